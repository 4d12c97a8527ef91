"""Write the notebooks in this folder from the cells below (stripped: no outputs, no execution counts).

    python notebooks/build.py          # rewrite every .ipynb
    python notebooks/build.py --check  # exit 1 if a committed .ipynb differs from what this script writes

Edit the cells here, not in the .ipynb files, so a review reads plain Python.
Each notebook: a markdown cell saying what it shows, one parameter cell, then the work.
"""

import argparse
import pathlib
import sys

import nbformat

HERE = pathlib.Path(__file__).resolve().parent

# Shared by every notebook: where we run (Colab or a checkout), whether the network may be used, install.
SETUP = r'''
import importlib.util, os, pathlib, socket, subprocess, sys, time

IN_COLAB = importlib.util.find_spec("google.colab") is not None


def reachable(host, port=443, timeout=3.0):
    """A quick TCP probe, so offline runs (CI, this repository's tests) skip downloads within seconds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


# FINEPRUNE_OFFLINE=1 (set by tests/test_notebooks.py) forbids downloads even where the network is up.
ONLINE = os.environ.get("FINEPRUNE_OFFLINE") != "1" and reachable("storage.googleapis.com")
if IN_COLAB:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"tflite-fineprune[demo] @ git+{REPO_URL}"],
                   check=True)
    REPO_ROOT = None
else:
    # A checkout: the notebooks live in <repo>/notebooks, the packages in <repo> (else: installed, or on PYTHONPATH).
    REPO_ROOT = next((p for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents) if (p / "tflite_fineprune").is_dir()),
                     None)
    if REPO_ROOT and str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
print(f"Colab: {IN_COLAB}; network: {'yes' if ONLINE else 'no (offline: downloads are skipped, local data is used)'}; "
      f"quick settings: {QUICK}")
'''

PARAMS_HEAD = r'''
import os

# PLACEHOLDER: the public repository is not known yet; replace OWNER/REPO before sharing the Colab links.
REPO_URL = "https://github.com/OWNER/REPO"
QUICK = os.environ.get("FINEPRUNE_QUICK") == "1"  # small settings: every notebook runs in minutes on 2 CPU cores
'''


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text):
    return nbformat.v4.new_code_cell(text.strip())


def notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}, "colab": {"provenance": []}}
    nb.cells = cells
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids keep the diff of a regenerated notebook empty
    return nb


# ---------------------------------------------------------------------------------------------------------------------
QUICKSTART = [
    md(r'''
# Quickstart: export, personalize one user, save and load the state

**What this shows.** A Keras classifier (a Fashion-MNIST MLP, trained here) is exported to one `.tflite` that
carries Fine-Pruning as signatures. One user who only ever meets three kinds of clothing gives the model
unlabeled images; `Personalizer.personalize` observes them through the TFLite interpreter, chooses a recipe
without labels (classes to exclude, dormant units to prune) and says why. We compare the user's held-out
accuracy before and after, look at what was pruned, save the user's state and load it back into a fresh
interpreter.

Runs in Colab (installs the package from GitHub, downloads Fashion-MNIST through Keras) or in a checkout
(`FINEPRUNE_QUICK=1` for small settings; offline it reads `/usr/share/datasets/fashion-mnist`,
`apt-get install dataset-fashion-mnist`).
'''),
    code(PARAMS_HEAD + r'''
HIDDEN = (256, 256) if QUICK else (1024, 1024)  # the MLP's hidden layers: over-parameterized on purpose
TRAIN_IMAGES = 12000 if QUICK else None          # None: all 60,000 training images
EPOCHS = 2 if QUICK else 5
USER_CLASSES = (0, 7, 9)                         # the classes this user meets: T-shirt/top, sneaker, ankle boot
ADAPT_PER_CLASS, EVAL_PER_CLASS = 100, 100       # unlabeled adaptation images and held-out images per class
WORKDIR = "fineprune-quickstart"
'''),
    code(SETUP),
    md("## Data: Fashion-MNIST, and one user's unlabeled and held-out images"),
    code(r'''
import numpy as np


def load_fashion():
    if ONLINE:
        try:
            import keras
            (x, y), (tx, ty) = keras.datasets.fashion_mnist.load_data()
            return x, y, tx, ty, "keras.datasets (downloaded)"
        except Exception as exc:  # a failed download falls back to the local copy
            print(f"download failed ({exc}); using the local copy")
    else:
        print("offline: download skipped; reading the local Fashion-MNIST")
    from converters.fashion import load_fashion_mnist
    (x, y), (tx, ty) = load_fashion_mnist("train"), load_fashion_mnist("test")
    return x, y, tx, ty, "local files"


train_x, train_y, test_x, test_y, source = load_fashion()
from converters.fashion import FASHION_LABELS
print(f"{len(train_x)} training and {len(test_x)} test images from {source}")

rng = np.random.default_rng(0)
adapt, held_x, held_y = [], [], []
for c in USER_CLASSES:
    order = rng.permutation(np.flatnonzero(test_y == c))
    adapt.append(test_x[order[:ADAPT_PER_CLASS]])
    held_x.append(test_x[order[ADAPT_PER_CLASS:ADAPT_PER_CLASS + EVAL_PER_CLASS]])
    held_y.append(np.full(EVAL_PER_CLASS, c))
adapt_x, eval_x, eval_y = np.concatenate(adapt), np.concatenate(held_x), np.concatenate(held_y)
others = np.flatnonzero(~np.isin(test_y, USER_CLASSES))[:1000]  # what the personalized model may forget
print("user meets:", ", ".join(FASHION_LABELS[c] for c in USER_CLASSES),
      f"— {len(adapt_x)} unlabeled adaptation images, {len(eval_x)} held-out images")
'''),
    md("## Train and export"),
    code(r'''
import keras
from converters.fashion import fashion_mlp
from tflite_fineprune import export_model

keras.utils.set_random_seed(0)
model = fashion_mlp(HIDDEN)
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
limit = TRAIN_IMAGES or len(train_x)
model.fit(train_x[:limit], train_y[:limit], batch_size=128, epochs=EPOCHS, verbose=2)

os.makedirs(WORKDIR, exist_ok=True)
MODEL = os.path.join(WORKDIR, "fashion_mlp.tflite")
print(export_model(model, MODEL, labels=FASHION_LABELS, prune_outputs=True))
'''),
    md("## Personalize one user, without labels"),
    code(r'''
from tflite_fineprune import Personalizer


def accuracy(p, x, y):
    return float(np.mean(p.predict(x).argmax(1) == y))


p = Personalizer(MODEL)
before = {"user": accuracy(p, eval_x, eval_y), "others": accuracy(p, test_x[others], test_y[others])}
report = p.personalize(adapt_x)  # observe the unlabeled images, choose and apply a recipe
print(report)
after = {"user": accuracy(p, eval_x, eval_y), "others": accuracy(p, test_x[others], test_y[others])}
s = p.sparsity()
print(f"\nuser's held-out accuracy {before['user']:.3f} → {after['user']:.3f}; "
      f"other users' images {before['others']:.3f} → {after['others']:.3f}")
print(f"units pruned {s.units:.1%}, weights {s.weights:.1%}, MACs {s.macs:.1%}")
'''),
    code(r'''
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
axes[0].bar(["user, dense", "user, pers.", "others, dense", "others, pers."],
            [before["user"], after["user"], before["others"], after["others"]],
            color=["#999", "#2a7", "#999", "#c63"])
axes[0].set_ylim(0, 1); axes[0].set_title("held-out accuracy"); axes[0].tick_params(axis="x", labelsize=8)
names = list(p.masks)
kept = [int(p.masks[n].sum()) for n in names]
total = [len(p.masks[n]) for n in names]
axes[1].bar(names, total, color="#ddd", label="units")
axes[1].bar(names, kept, color="#2a7", label="kept")
axes[1].set_title("units kept per layer"); axes[1].legend()
for name, fractions in p.activity.items():
    if name in [g.name for g in p.metadata.hidden_groups]:
        axes[2].hist(fractions, bins=40, histtype="step", label=name)
axes[2].set_yscale("log"); axes[2].set_xlabel("fraction of the user's images where a unit is active")
axes[2].set_title("unit activity"); axes[2].legend()
fig.tight_layout()
fig.savefig(os.path.join(WORKDIR, "quickstart.png"), dpi=90)
plt.show()
'''),
    md("## Save the user's state, load it into a fresh interpreter"),
    code(r'''
STATE = os.path.join(WORKDIR, "user.state")
p.save_state(STATE)
fresh = Personalizer(MODEL)
fresh.load_state(STATE)
assert np.array_equal(fresh.predict(eval_x), p.predict(eval_x)), "the reloaded state must predict identically"
print(f"{STATE}: {os.path.getsize(STATE):,} bytes; reloaded: {fresh}")
print(f"reloaded held-out accuracy {accuracy(fresh, eval_x, eval_y):.3f}")
fresh.reset()
print(f"after reset() (dense again): {accuracy(fresh, eval_x, eval_y):.3f}")
'''),
]


# ---------------------------------------------------------------------------------------------------------------------
YOUR_KEYWORDS = [
    md(r'''
# Your keywords: train on your clips, export with the front-end, personalize a held-out speaker

**What this shows.** Bring labelled keyword clips — a folder `<label>/<clip>.wav` (any sample rate; resampled
to 16 kHz and cut or padded to 1 s), uploaded as a zip in Colab, or recorded in the browser. The speech
recipe (`python -m converters.speech train`, [docs/training.md](../docs/training.md)) trains a DS-CNN behind
the in-graph MFCC front-end with speaker-disjoint validation and prints a held-out report; the export takes
raw PCM. One speaker is kept out of training entirely; their unlabeled clips personalize the model
(`Personalizer.personalize`), and their other clips measure it. Finally the `.tflite` is downloaded.

Without your own clips the notebook uses a sample of the Speech Commands v0.02 test split: from the reference
data folder (`$FINEPRUNE_DATA`, else `../shared/data`) when it is there (offline, e.g. in this repository's
tests), else downloaded (112 MB).
Speaker ids are read from file names (`--speaker-pattern`; Speech Commands and FSDD names work as they are).
'''),
    code(PARAMS_HEAD + r'''
DATA_DIR = None        # your clips: <label>/<clip>.wav; None → upload a zip (Colab) or the local Speech Commands sample
UPLOAD = True          # Colab, DATA_DIR None: ask for a zip of the folder
RECORD_LABELS = ()     # Colab: record this many clips per label in the browser, e.g. ("yes", "no"); () = no recording
RECORD_PER_LABEL = 10
WORDS = (("yes", "no", "up", "down") if QUICK else
         ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"))  # the local sample's labels
CLIPS_PER_WORD = 50 if QUICK else 300   # local sample: clips per label from the other speakers
HOLDOUT_SPEAKER = None  # None: the speaker with the most clips
WIDTH = 0.25 if QUICK else 1.0          # DS-CNN channels × WIDTH (1 = MLPerf Tiny's 64)
EPOCHS = 5 if QUICK else 60             # at most (early stopping)
# Quick settings only exercise every cell: the model they train is barely better than chance.
WORKDIR = "fineprune-keywords"
'''),
    code(SETUP),
    md("## Your clips (upload, record, or the local sample)"),
    code(r'''
import re, shutil, zipfile
from tflite_fineprune.reference_data import SPEECH_COMMANDS_TEST, data_root

SPEAKER = re.compile(r"([0-9a-f]{8})_nohash_|^\d+_([A-Za-z]+)_\d+$")  # Speech Commands, FSDD
os.makedirs(WORKDIR, exist_ok=True)


def speaker_of(path):
    m = SPEAKER.search(pathlib.Path(path).stem)
    return (m.group(1) or m.group(2)) if m else None


def record_clips(folder, labels, per_label):
    """Colab only: record 1-second clips from the browser's microphone (decoded with ffmpeg)."""
    from base64 import b64decode
    from google.colab.output import eval_js
    js = """async function rec(ms){const s=await navigator.mediaDevices.getUserMedia({audio:true});
      const r=new MediaRecorder(s);const c=[];r.ondataavailable=e=>c.push(e.data);r.start();
      await new Promise(t=>setTimeout(t,ms));r.stop();await new Promise(t=>r.onstop=t);
      s.getTracks().forEach(t=>t.stop());const b=new Blob(c);const d=await new Promise(t=>{const f=new FileReader();
      f.onloadend=()=>t(f.result);f.readAsDataURL(b)});return d.split(',')[1];}"""
    for label in labels:
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        for i in range(per_label):
            input(f"press Enter, then say '{label}' ({i + 1}/{per_label})")
            raw = b64decode(eval_js(js + "rec(1200)"))
            webm = os.path.join(folder, label, f"me_{i}.webm")
            open(webm, "wb").write(raw)
            subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", webm, "-ac", "1", "-ar", "16000",
                            webm[:-5] + f"_nohash_{i}.wav"], check=True)
            os.remove(webm)


SPEECH_COMMANDS_URL = "https://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz"  # 112 MB


def speech_commands_test():
    """The Speech Commands v0.02 test split: the reference data folder's copy, else (online) downloaded."""
    local = data_root() / SPEECH_COMMANDS_TEST
    if local.is_dir() or not ONLINE:
        return local
    target = pathlib.Path(WORKDIR, "speech_commands_test")
    if not target.is_dir():
        import tarfile, urllib.request
        archive, _ = urllib.request.urlretrieve(SPEECH_COMMANDS_URL, os.path.join(WORKDIR, "speech_commands_test.tgz"))
        with tarfile.open(archive) as tar:
            tar.extractall(target)
    return target


def local_sample(folder):
    """Links (no copies) to Speech Commands test clips: the held-out speaker's, plus CLIPS_PER_WORD per word."""
    source = speech_commands_test()
    clips = {w: sorted((source / w).glob("*.wav")) for w in WORDS}
    by_speaker = {}
    for w, files in clips.items():
        for f in files:
            by_speaker.setdefault(speaker_of(f), []).append(f)
    holdout = HOLDOUT_SPEAKER or max(by_speaker, key=lambda s: len(by_speaker[s]))
    rng = np.random.default_rng(0)
    for w, files in clips.items():
        os.makedirs(os.path.join(folder, w), exist_ok=True)
        others = [f for f in files if speaker_of(f) != holdout]
        chosen = [others[i] for i in rng.permutation(len(others))[:CLIPS_PER_WORD]]
        for f in chosen + [f for f in files if speaker_of(f) == holdout]:
            os.symlink(f, os.path.join(folder, w, f.name))
    return holdout


import numpy as np

holdout = HOLDOUT_SPEAKER
if DATA_DIR is None:
    DATA_DIR = os.path.join(WORKDIR, "clips")
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    if IN_COLAB and UPLOAD:
        from google.colab import files
        for name, blob in files.upload().items():  # a zip of <label>/<clip>.wav folders
            open(name, "wb").write(blob)
            zipfile.ZipFile(name).extractall(DATA_DIR)
    if IN_COLAB and RECORD_LABELS:
        record_clips(DATA_DIR, RECORD_LABELS, RECORD_PER_LABEL)
    if not os.path.isdir(DATA_DIR) or not os.listdir(DATA_DIR):
        print("no clips given: using a sample of the Speech Commands test split from", speech_commands_test())
        holdout = local_sample(DATA_DIR)
labels = sorted(d for d in os.listdir(DATA_DIR) if os.path.isdir(os.path.join(DATA_DIR, d)))
files = {l: sorted(pathlib.Path(DATA_DIR, l).iterdir()) for l in labels}
if holdout is None:
    counts = {}
    for l in labels:
        for f in files[l]:
            counts[speaker_of(f)] = counts.get(speaker_of(f), 0) + 1
    counts.pop(None, None)
    holdout = max(counts, key=counts.get)
print(f"{sum(map(len, files.values()))} clips, labels {labels}; held-out speaker {holdout}")
'''),
    md("## Train with the speech recipe (held-out report), export with the MFCC front-end"),
    code(r'''
MODEL = os.path.join(WORKDIR, "keywords.tflite")
command = [sys.executable, "-m", "converters.speech", "train", DATA_DIR, "-o", MODEL, "--width", str(WIDTH),
           "--epochs", str(EPOCHS), "--holdout-speakers", holdout, "--prune-outputs"]
env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT or ""), os.environ.get("PYTHONPATH")])))
start = time.time()
run = subprocess.run(command, capture_output=True, text=True, env=env)
print(run.stdout)
if run.returncode:
    print(run.stderr[-3000:])
    raise RuntimeError(f"training failed (exit {run.returncode})")
print(f"({time.time() - start:.0f} s)")
'''),
    md("## Personalize the held-out speaker"),
    code(r'''
from tflite_fineprune import Personalizer
from tflite_fineprune.datafiles import fit_audio, load_audio
from converters.evaluation import split_adapt_eval

p = Personalizer(MODEL)
print(p, "| input", p.metadata.input_dtype, p.input_shape, f"at {p.metadata.sample_rate} Hz | labels", p.labels)


def pcm(path):
    audio, rate = load_audio(path)
    return fit_audio(path, audio, rate, tuple(p.input_shape[1:]), p.metadata.sample_rate)


theirs = [(f, p.labels.index(l)) for l in labels for f in files[l] if speaker_of(f) == holdout]
adapt, held = split_adapt_eval(theirs, seed=0)
adapt_x = np.stack([pcm(f) for f, _ in adapt])
eval_x, eval_y = np.stack([pcm(f) for f, _ in held]), np.array([y for _, y in held])
dense = float(np.mean(p.predict(eval_x).argmax(1) == eval_y))
report = p.personalize(adapt_x)
print(report)
after = float(np.mean(p.predict(eval_x).argmax(1) == eval_y))
print(f"\nspeaker {holdout}: {len(adapt_x)} unlabeled clips observed, {len(eval_x)} held out; "
      f"accuracy {dense:.3f} → {after:.3f}")
USER_STATE = os.path.join(WORKDIR, f"{holdout}.state")
p.save_state(USER_STATE)
'''),
    md("## Download the model (and the speaker's state)"),
    code(r'''
if IN_COLAB:
    from google.colab import files
    files.download(MODEL)
    files.download(USER_STATE)
else:
    for path in (MODEL, USER_STATE):
        print(f"{os.path.abspath(path)}: {os.path.getsize(path):,} bytes")
'''),
]


# ---------------------------------------------------------------------------------------------------------------------
PAPER_IMAGENET = [
    md(r'''
# The paper's experiment: ResNet50 on ImageNet class subsets

**What this shows.** Fine-Pruning's headline (Bingham, Zonouz, Aran, *Patterns* 2025): a ResNet50 trained on
ImageNet, personalized for users who each meet only a few classes, keeps or gains accuracy on those users'
images at about 70 % sparsity. Here: `keras.applications.ResNet50` with ImageNet weights is exported with its
preprocessing in the graph; users are class subsets of **Imagenette** (10 ImageNet classes, through
`tensorflow-datasets`); per user we compare the dense model with the paper's recipe (observe the user's unlabeled
images, prune each layer's least active units) at several sparsities, class masking (exclude classes the user's
data never predicts), both together, and the automatic label-free choice (`personalize`, "auto"). Then the
slimmed file (pruned channels removed, `Personalizer.slim`): size and latency. A table and a plot at the end.

**Offline** (no network; this repository's tests) the same experiment runs on the MLPerf Tiny **ResNet-8 with
CIFAR-10 class subsets** from the reference data folder, so every cell still executes; the numbers are then
ResNet-8's, not the paper's. `docs/notebooks.md` says which runs were made where.
'''),
    code(PARAMS_HEAD + r'''
SPARSITIES = (0.3, 0.5, 0.7) if QUICK else (0.3, 0.5, 0.7, 0.9)  # fraction of each layer's units pruned
MIN_CLASS_FRACTION = 0.10          # class masking: exclude classes predicted on < 10 % of the user's images
CLASS_COUNTS = (2, 3, 5)           # each user meets this many classes
USERS_PER_COUNT = 1 if QUICK else 3  # ResNet50 runs on the CPU through LiteRT: 9 users take tens of minutes
ADAPT_PER_CLASS = 20 if QUICK else 50   # unlabeled images per class the user's model observes
EVAL_PER_CLASS = 20 if QUICK else 50    # held-out images per class
OTHERS_PER_USER = 50 if QUICK else 100  # other users' images: what the personalized model forgets
LATENCY_RUNS = 20 if QUICK else 100
WORKDIR = "fineprune-paper"
USE_IMAGENET = None                # None: ResNet50/Imagenette when the network is there, else ResNet-8/CIFAR-10
'''),
    code(SETUP),
    md("## Model and class-subset users"),
    code(r'''
import numpy as np
from converters.evaluation import class_subset_users

os.makedirs(WORKDIR, exist_ok=True)
MODEL = os.path.join(WORKDIR, "model.tflite")
per_class = ADAPT_PER_CLASS + EVAL_PER_CLASS
if USE_IMAGENET is None:
    USE_IMAGENET = ONLINE
if not USE_IMAGENET:
    print("offline: ImageNet weights and Imagenette download skipped; running ResNet-8 on CIFAR-10 class subsets")

if USE_IMAGENET:
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from converters.vision import export_keras_app

    # Imagenette's 10 classes (tfds label order) as ImageNet-1k class indices.
    IMAGENETTE_TO_IMAGENET = np.array([0, 217, 482, 491, 497, 566, 569, 571, 574, 701])
    CLASS_NAMES = ("tench", "English springer", "cassette player", "chain saw", "church", "French horn",
                   "garbage truck", "gas pump", "golf ball", "parachute")
    def center_square(x, y):  # the central square, resized to 224×224 (the front-end takes uint8 pixels)
        h, w = tf.shape(x)[0], tf.shape(x)[1]
        side = tf.minimum(h, w)
        x = tf.image.crop_to_bounding_box(x, (h - side) // 2, (w - side) // 2, side, side)
        return tf.cast(tf.round(tf.image.resize(x, (224, 224))), tf.uint8), y

    data = tfds.load("imagenette/320px-v2", split="validation", as_supervised=True)
    by_class = [[] for _ in range(10)]
    for image, label in tfds.as_numpy(data.map(center_square)):
        if len(by_class[label]) < per_class:
            by_class[label].append(image)
        if all(len(c) >= per_class for c in by_class):
            break
    images_by_class = [np.stack(c) for c in by_class]
    report, weights = export_keras_app("ResNet50", MODEL, weights="imagenet", size=224, prune_outputs=True)
    DESCRIPTION = "ResNet50 (ImageNet weights), Imagenette class subsets"
else:
    from PIL import Image
    from converters.vision import export_mlperf
    from tflite_fineprune.reference_data import CIFAR10_LABELS, CIFAR10_TEST, data_root

    # Skip each class's first 100 images: the export may use them as its BatchNorm reference pool.
    folder = data_root() / CIFAR10_TEST
    images_by_class = [np.stack([np.asarray(Image.open(f).convert("RGB"))
                                 for f in sorted((folder / name).glob("*.jpg"))[100:100 + per_class]])
                       for name in CIFAR10_LABELS]
    CLASS_NAMES = CIFAR10_LABELS
    report = export_mlperf(MODEL, prune_outputs=True)
    DESCRIPTION = "MLPerf Tiny ResNet-8, CIFAR-10 class subsets (offline stand-in)"
print(report)

users = class_subset_users(images_by_class, CLASS_COUNTS, USERS_PER_COUNT, ADAPT_PER_CLASS, EVAL_PER_CLASS)
if USE_IMAGENET:  # the model predicts ImageNet's 1000 classes
    for u in users:
        u.eval_y = IMAGENETTE_TO_IMAGENET[u.eval_y]
print(f"{len(users)} users: " + ", ".join(u.name for u in users))
'''),
    md("## Dense vs personalized, per user, for each recipe"),
    code(r'''
from tflite_fineprune import Personalizer
from converters.evaluation import Recipe, evaluate_users, format_summary, summarize
from tflite_fineprune.recipe import AutoRule

recipes = ([Recipe(f"prune {s:.0%} of units", sparsity=s) for s in SPARSITIES]
           + [Recipe(f"classes <{MIN_CLASS_FRACTION:.0%}", min_class_fraction=MIN_CLASS_FRACTION),
              Recipe(f"prune {max(SPARSITIES):.0%} + classes", sparsity=max(SPARSITIES),
                     min_class_fraction=MIN_CLASS_FRACTION),
              Recipe("auto (personalize)", rule=AutoRule())])
p = Personalizer(MODEL)
start = time.time()
rows = evaluate_users(p, users, recipes, others_per_user=OTHERS_PER_USER, progress=False)
print(f"{DESCRIPTION}: {len(users)} users × {len(recipes)} recipes in {time.time() - start:.0f} s\n")
print(format_summary(summarize(rows)))
'''),
    code(r'''
import matplotlib.pyplot as plt


def mean(recipe, key):
    return float(np.mean([r[key] for r in rows if r["recipe"] == recipe.name]))


pruning = recipes[:len(SPARSITIES)]
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
ax = axes[0]
ax.plot([0] + [mean(r, "weight_sparsity") for r in pruning],
        [mean(pruning[0], "dense_accuracy")] + [mean(r, "accuracy") for r in pruning], "o-", label="user's classes")
ax.plot([0] + [mean(r, "weight_sparsity") for r in pruning],
        [mean(pruning[0], "dense_others")] + [mean(r, "others") for r in pruning], "s--", label="other users' images")
for r in recipes[len(SPARSITIES):]:
    ax.scatter(mean(r, "weight_sparsity"), mean(r, "accuracy"), marker="*", s=120, label=r.name)
ax.set_xlabel("weights removed"); ax.set_ylabel("mean held-out accuracy"); ax.set_ylim(0, 1); ax.legend(fontsize=8)
ax.set_title(DESCRIPTION, fontsize=9)
ax = axes[1]
names = [r.name for r in recipes]
dense = [mean(r, "dense_accuracy") for r in recipes]
pers = [mean(r, "accuracy") for r in recipes]
x = np.arange(len(names))
ax.bar(x - 0.2, dense, 0.4, color="#999", label="dense"); ax.bar(x + 0.2, pers, 0.4, color="#2a7", label="personalized")
ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8); ax.set_ylim(0, 1); ax.legend()
ax.set_title("per recipe, mean over users", fontsize=9)
fig.tight_layout()
fig.savefig(os.path.join(WORKDIR, "paper.png"), dpi=90)
plt.show()
'''),
    md("## The slimmed model: pruned channels removed (size and latency)"),
    code(r'''
user = users[-1]
target = min(SPARSITIES, key=lambda s: abs(s - 0.7))  # the paper's operating point, or the nearest setting
p.reset()
p.observe(user.adapt_x, progress=False)
p.prune(target)
SLIM = os.path.join(WORKDIR, "user_slim.tflite")
slim = p.slim(SLIM)
print(f"{user.name}, prune {target:.0%}: {slim.dense_bytes:,} → {slim.slim_bytes:,} bytes; "
      f"weights removed {slim.weight_sparsity:.1%}, MACs removed {slim.mac_sparsity:.1%}"
      + (f"; still masked: {slim.still_masked}" if slim.still_masked else ""))

q = Personalizer(SLIM)
difference = np.abs(q.predict(user.eval_x) - p.predict(user.eval_x)).max()
print(f"max |slim - masked| on the user's held-out images: {difference:.2e}")


def latency(model, sample):
    model.predict(sample)
    start = time.perf_counter()
    for _ in range(LATENCY_RUNS):
        model.predict(sample)
    return (time.perf_counter() - start) / LATENCY_RUNS * 1e3


one = user.eval_x[:1]
dense_ms, slim_ms = latency(p, one), latency(q, one)
print(f"one image, {LATENCY_RUNS} runs: personalized export (masked) {dense_ms:.2f} ms, slim {slim_ms:.2f} ms "
      f"({dense_ms / slim_ms:.2f}×) — on this machine's CPU, through {q.backend}")
'''),
]


# ---------------------------------------------------------------------------------------------------------------------
PHONE_ASSETS = [
    md(r'''
# The phone's assets: build them, inspect the manifest, replay the app's session in Python

**What this shows.** `tflite-fineprune android-assets` ([docs/android.md](../docs/android.md)) writes what the
Android demo app bundles: the exported models (MLPerf Tiny DS-CNN keyword spotting with its MFCC front-end,
MLPerf Tiny ResNet-8 behind a uint8 front-end), one bundled user per model and `manifest.json` (signatures,
recipe, expected numbers). The bundled users are picked by a stated rule from the users of `tflite-fineprune demo`
(Speech Commands speakers; CIFAR-10 users who meet 2, 3 or 5 classes): the demo's per-user evaluation runs over
all of them and the user whose gain is closest to the mean gain is bundled. We read the manifest, then run the app's exact call sequence (`converters.android_session.AppSession`: one sample per
signature call, as the Kotlin `PersonalizationSession` issues them) through LiteRT, and show the numbers the
phone must reproduce.

Needs the reference data folder (`$FINEPRUNE_DATA`, else `../shared/data`; in Colab upload or mount it and set
`DATA` below; `tflite_fineprune/reference_data.py` lists what it must hold).
'''),
    code(PARAMS_HEAD + r'''
DATA = None                         # reference data folder; None: $FINEPRUNE_DATA, else ../shared/data
OUTPUT = "fineprune-android-assets" # copy this folder to android_demo/app/src/main/assets/
RECORD = None                       # a folder for recordings of every signature call (the JVM replay tests)
'''),
    code(SETUP),
    md("## Build the assets"),
    code(r'''
import json
from converters.android_assets import build_assets
from tflite_fineprune.reference_data import data_root

print("reference data:", data_root(DATA))
start = time.time()
manifest = build_assets(OUTPUT, data=DATA, record=RECORD)
print(f"({time.time() - start:.0f} s)")
'''),
    md("## Inspect the manifest"),
    code(r'''
for path in sorted(pathlib.Path(OUTPUT).rglob("*")):
    if path.is_file() and path.parent.name in ("models", OUTPUT):
        print(f"{path.relative_to(OUTPUT)}: {path.stat().st_size:,} bytes")
print(f"{sum(f.stat().st_size for f in pathlib.Path(OUTPUT).rglob('*') if f.is_file()):,} bytes in all\n")
for m in manifest["models"]:
    print(f"{m['key']}: {m['name']} — {m['file']}, {m['num_units']} prunable units, labels {m['labels']}")
    print(f"  signatures: {', '.join(m['signatures'])}")
    print(f"  infer input: {m['signatures']['infer']['inputs']}")
    print(f"  recipe: {m['recipe']['name']}: {json.dumps({k: v for k, v in m['recipe'].items() if k != 'name'})}")
for u in manifest["users"]:
    print(f"user {u['name']} ({u['model']}): {u['description']}; {len(u['adapt'])} adaptation files (no labels), "
          f"{len(u['eval'])} evaluation files")
    c = u["chosen_by"]
    print(f"  chosen by: {c['rule']}: {c['demo_user']} of {c['users']} (mean gain {c['mean_gain']:+.3f})")
'''),
    md("## Replay the app's session in Python: the numbers the phone must show"),
    code(r'''
import numpy as np
from PIL import Image
from converters.android_session import AppSession, Recorder
from tflite_fineprune.datafiles import fit_audio, load_audio
from tflite_fineprune.interpreters import open_interpreter
from tflite_fineprune.metadata import read_model_metadata
from tflite_fineprune.state import read_file


def sample(model, relative):
    path = os.path.join(OUTPUT, relative)
    if model["kind"] == "speech":
        audio, rate = load_audio(path)
        return fit_audio(path, audio, rate, tuple(model["signatures"]["infer"]["inputs"][0]["shape"][1:]),
                         model["sample_rate"])
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.uint8)


models = {m["key"]: m for m in manifest["models"]}
rows = []
for u in manifest["users"]:
    model = models[u["model"]]
    path = os.path.join(OUTPUT, model["file"])
    meta = read_model_metadata(read_file(path, "model"), source=path)
    interpreter, _ = open_interpreter(path, "litert")
    recorder = Recorder(interpreter)  # counts the calls the phone will make
    session = AppSession(model, recorder)
    start = time.time()
    got = session.personalize([sample(model, f) for f in u["adapt"]], [sample(model, e["file"]) for e in u["eval"]],
                              [e["label"] for e in u["eval"]], meta)
    seconds = time.time() - start
    want = u["expected"]
    same = all(np.isclose(got[k], want[k]) if isinstance(want[k], float) else got[k] == want[k] for k in want)
    rows.append((u["name"], model["recipe"]["name"], want, got, len(recorder.calls), seconds, same))

print(f"{'user':24} {'dense → after (manifest)':26} {'replayed here':16} {'units':>9} {'weights':>8} {'MACs':>6} "
      f"{'calls':>6}  classes excluded")
for name, recipe, want, got, calls, seconds, same in rows:
    print(f"{name:24} {want['dense_accuracy']:.3f} → {want['accuracy']:.3f}{'':14} "
          f"{got['dense_accuracy']:.3f} → {got['accuracy']:.3f}  {got['pruned_units']:>4}/{got['total_units']:<4} "
          f"{got['weight_sparsity']:>7.1%} {got['mac_sparsity']:>6.1%} {calls:>6}  "
          f"{', '.join(got['excluded_classes']) or 'none'}{'' if same else '  ← DIFFERS from the manifest'}")
assert all(r[-1] for r in rows), "the replay must reproduce the manifest's numbers"
print("\nThe phone shows the same numbers (its LiteRT build may move an argmax on a borderline sample).")
'''),
]


NOTEBOOKS = {"quickstart": QUICKSTART, "your_keywords": YOUR_KEYWORDS, "paper_imagenet": PAPER_IMAGENET,
             "phone_assets": PHONE_ASSETS}

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(notebook(cells)) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python notebooks/build.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
