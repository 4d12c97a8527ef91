"""The cells of your_keywords.ipynb (notebooks/build.py writes the notebook)."""

from cells import PARAMS_HEAD, SETUP, code, md  # noqa: F401

# ---------------------------------------------------------------------------------------------------------------------
YOUR_KEYWORDS = [
    md(r'''
# Your keywords: train on your clips, export with the front-end, personalize a held-out speaker

**What this shows.** Bring labelled keyword clips — a folder `<label>/<clip>.wav` (any sample rate; resampled
to 16 kHz and cut or padded to 1 s), uploaded as a zip in Colab, or recorded in the browser. The speech
recipe (`python -m tflite_fineprune.converters.speech train`, [docs/training.md](../docs/training.md)) trains a DS-CNN
behind
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
from tflite_fineprune.demo_data import SPEECH_COMMANDS_TEST, data_root

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
    """The Speech Commands v0.02 test split: the demo data folder's copy, else (online) downloaded."""
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
command = [sys.executable, "-m", "tflite_fineprune.converters.speech", "train", DATA_DIR, "-o", MODEL,
           "--width", str(WIDTH),
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
from tflite_fineprune.converters.evaluation import split_adapt_eval

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
