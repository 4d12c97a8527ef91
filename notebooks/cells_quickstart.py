"""The cells of quickstart.ipynb (notebooks/build.py writes the notebook)."""

from cells import PARAMS_HEAD, SETUP, code, md  # noqa: F401

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
    from tflite_fineprune.converters.fashion import load_fashion_mnist
    (x, y), (tx, ty) = load_fashion_mnist("train"), load_fashion_mnist("test")
    return x, y, tx, ty, "local files"


train_x, train_y, test_x, test_y, source = load_fashion()
from tflite_fineprune.converters.fashion import FASHION_LABELS
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
from tflite_fineprune.converters.fashion import fashion_mlp
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
