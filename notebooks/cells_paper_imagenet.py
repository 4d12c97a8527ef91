"""The cells of paper_imagenet.ipynb (notebooks/build.py writes the notebook)."""

from cells import PARAMS_HEAD, SETUP, code, md  # noqa: F401

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
CIFAR-10 class subsets** from the demo data folder, so every cell still executes; the numbers are then
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
from tflite_fineprune.converters.evaluation import class_subset_users

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
    from tflite_fineprune.converters.vision import export_keras_app

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
    from tflite_fineprune.converters.vision import export_mlperf
    from tflite_fineprune.demo_data import CIFAR10_LABELS, CIFAR10_TEST, data_root

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
from tflite_fineprune.converters.evaluation import Recipe, evaluate_users, format_summary, summarize
from tflite_fineprune.auto_recipe import AutoRule

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
