"""How close does label-free `auto` get to adaptation *with* labels? Two label-based reference rows.

For the users of benchmarks/auto.py (same builders: same seeds, same splits, same
"others" draw) and the Keras models the converters build, per user:

- `last layer + labels`: only the final Dense layer (the classifier) is trained
  on the adaptation half with its labels, from the trained weights — what
  on-device training does. Penultimate features are computed once per user
  through Keras (the speech model's MFCC front-end included); the head is fitted
  with Adam (lr 1e-3, batch 32) for a fixed 30 epochs: no early stopping, since
  that would need labelled validation data the user does not have.
- `tfmot prune + labels`: tensorflow-model-optimization's `prune_low_magnitude`
  on every Conv2D/DepthwiseConv2D/Dense kernel, ConstantSparsity at the
  weights-removed share of a recipe in the auto tables (reached at the first
  training step, re-masked every 100 steps), fine-tuned with labels (Adam
  lr 1e-4, batch 32, a fixed 10 epochs, BatchNorm statistics frozen),
  stripped, evaluated. tfmot needs
  tf-keras, which switches Keras to the legacy one on import, so this runs in
  its own process in its own venv (benchmarks/.venv-tfmot, created here on
  first use: tensorflow of the running version, tf-keras, tensorflow-model-
  optimization). The classifier's weights and its inputs (the speech model's
  MFCCs, the ResNet's float pixels) travel as .npz.

Rows over all users: dense (Keras, checked against the .tflite), auto (default)
(the .tflite through `Personalizer`, as in auto.py) and last layer + labels.
The tfmot row covers only the first `--tfmot-users` users per kind (default
10: about 10 s per user on 2 shared cores); a second table shows every row on
those same users. Needs network on first use (pip); fails clearly without.

usage: python benchmarks/label_references.py [--kinds fashion,cifar,speech] [--users N] [--tfmot-users 10]
       [--no-tfmot] [--out DIR]
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parents[1]
TFMOT_VENV = ROOT / "benchmarks" / ".venv-tfmot"

# tfmot's target sparsity per kind: auto's weights-removed share where it removes weights (fashion: 53.3 %);
# where auto removes (almost) none (speech 0 %, CIFAR 0.5 %), the weights-removed share of the best hand-picked
# recipe that prunes units (docs/personalization.md): speech "prune 2% units" 2.7 %, CIFAR "prune 5% + classes <10%"
# 5.3 %.
TFMOT_SPARSITY = {"speech": 0.027, "cifar": 0.053, "fashion": 0.533}
HEAD = dict(epochs=30, learning_rate=1e-3, batch_size=32)
TFMOT = dict(epochs=10, learning_rate=1e-4, batch_size=32)
OTHERS_PER_USER = 100  # as benchmarks/auto.py


# ---------------------------------------------------------------- main process (Keras 3, the project's venv)


def keras_model(kind, root, out):
    """The Keras model the converter exports for this kind (auto.py's export of it is the .tflite)."""
    import keras

    if kind == "speech":
        from tflite_fineprune.converters.speech import load_mlperf_ds_cnn, with_frontend
        from tflite_fineprune.demo_data import MLPERF_KWS

        return with_frontend(load_mlperf_ds_cnn(root / MLPERF_KWS))
    if kind == "cifar":
        from tflite_fineprune.converters.vision import load_mlperf_resnet8, with_frontend

        return with_frontend(load_mlperf_resnet8(root))
    return keras.models.load_model(out / "fashion_mlp.keras", compile=False)  # auto.py's _fashion trained it


class SplitModel:
    """A classifier model seen as front-end → body → final Dense (the head).

    The speech and CIFAR models nest the classifier behind an in-graph front-end
    (MFCC, uint8 cast); the Fashion MLP is flat (its front-end is the identity).
    """

    def __init__(self, model):
        import keras

        nested = isinstance(model.layers[-1], keras.Model)
        self.classifier = model.layers[-1] if nested else model
        self.front = keras.Model(model.inputs, model.layers[-2].output) if nested else None
        self.head = self.classifier.layers[-1]
        if not isinstance(self.head, keras.layers.Dense):
            raise TypeError(f"expected a final Dense layer, found {type(self.head).__name__}")
        self.body = keras.Model(self.classifier.inputs, self.head.input)
        self.softmax = self.head.get_config()["activation"] == "softmax"

    def classifier_input(self, x):
        return x if self.front is None else self.front.predict(x, batch_size=256, verbose=0)

    def features(self, x):
        return self.body.predict(self.classifier_input(x), batch_size=256, verbose=0)

    def head_logits(self, features, weights=None):
        kernel, bias = weights or self.head.get_weights()
        return features @ kernel + bias


def fine_tune_head(split, features, labels, seed):
    """The final Dense layer, trained on (features, labels) from the trained weights: (kernel, bias)."""
    import keras

    keras.utils.set_random_seed(seed)
    kernel, bias = split.head.get_weights()
    head = keras.Sequential([keras.Input((kernel.shape[0],)), keras.layers.Dense(kernel.shape[1])])
    head.set_weights([kernel, bias])
    head.compile(optimizer=keras.optimizers.Adam(HEAD["learning_rate"]),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    head.fit(features, labels, epochs=HEAD["epochs"], batch_size=HEAD["batch_size"], shuffle=True, verbose=0)
    return head.get_weights()


def row(user, recipe, dense, accuracy, dense_others, others, weight_sparsity=0.0):
    """A row in the shape `evaluation.evaluate_users` gives, for `summarize`."""
    return {"user": user.name, "recipe": recipe, "adapt": len(user.adapt_x), "eval": len(user.eval_y),
            "dense_accuracy": dense, "accuracy": accuracy, "dense_others": dense_others, "others": others,
            "unit_sparsity": 0.0, "weight_sparsity": weight_sparsity, "mac_sparsity": 0.0}


def label_rows(kind, root, out, users_wanted, tfmot_users, run_tfmot):
    import numpy as np

    import auto
    from tflite_fineprune.converters import demo
    from tflite_fineprune import Personalizer
    from tflite_fineprune.converters.evaluation import evaluate_users, others_sets

    build, _ = auto.KINDS[kind]
    model_path, users, _ = build(root, out, users_wanted)  # the very users (and .tflite) of auto.py
    others = others_sets(users, OTHERS_PER_USER)  # the same draw as evaluate_users
    split = SplitModel(keras_model(kind, root, out))

    # auto (default) and the .tflite's dense accuracy, exactly as auto.py computes them
    rows = evaluate_users(Personalizer(model_path), users, [demo.AUTO], others_per_user=OTHERS_PER_USER,
                          progress=False)
    tflite_dense = {r["user"]: r["dense_accuracy"] for r in rows}
    dense_rows, head_rows, jobs = [], [], []
    for i, (user, (other_x, other_y)) in enumerate(zip(users, others)):
        eval_features, other_features = split.features(user.eval_x), split.features(other_x)
        dense = float(np.mean(split.head_logits(eval_features).argmax(1) == user.eval_y))
        dense_others = float(np.mean(split.head_logits(other_features).argmax(1) == other_y))
        dense_rows.append(row(user, "dense (Keras)", dense, dense, dense_others, dense_others))
        weights = fine_tune_head(split, split.features(user.adapt_x), user.adapt_y, seed=i)
        head_rows.append(row(user, "last layer + labels", dense,
                             float(np.mean(split.head_logits(eval_features, weights).argmax(1) == user.eval_y)),
                             dense_others,
                             float(np.mean(split.head_logits(other_features, weights).argmax(1) == other_y))))
        if run_tfmot and i < tfmot_users:
            jobs.append({"name": user.name, "dense": dense, "dense_others": dense_others,
                         "adapt_x": split.classifier_input(user.adapt_x), "adapt_y": user.adapt_y,
                         "eval_x": split.classifier_input(user.eval_x), "eval_y": user.eval_y,
                         "others_x": split.classifier_input(other_x), "others_y": other_y})
    keras_dense = np.mean([r["dense_accuracy"] for r in dense_rows])
    print(f"dense check: Keras {keras_dense:.4f}, .tflite {np.mean(list(tflite_dense.values())):.4f} "
          f"(mean over {len(users)} users; largest per-user gap "
          f"{max(abs(r['dense_accuracy'] - tflite_dense[r['user']]) for r in dense_rows):.4f})")
    tfmot_rows = run_tfmot_worker(kind, root, split, jobs, users, out) if jobs else []
    return [r for r in rows if r["recipe"] == demo.AUTO.name], dense_rows, head_rows, tfmot_rows


# ---------------------------------------------------------------- the tfmot process (its own venv, legacy Keras)

def tfmot_python(venv=TFMOT_VENV):
    """The venv's python with tensorflow (this process's version), tf-keras and tfmot; created on first use."""
    from importlib.metadata import version

    from tflite_fineprune.errors import FinePruneError

    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import tf_keras, tensorflow_model_optimization"]
    if python.exists() and subprocess.run(probe, capture_output=True, env=_tfmot_env()).returncode == 0:
        return python
    tf_version = version("tensorflow")
    major_minor = ".".join(tf_version.split(".")[:2])
    packages = [f"tensorflow=={tf_version}", f"tf-keras~={major_minor}.0", "tensorflow-model-optimization"]
    print(f"creating {venv} with {' '.join(packages)} (once; about 600 MB)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], capture_output=True, text=True)
    if pip.returncode != 0 or subprocess.run(probe, capture_output=True, env=_tfmot_env()).returncode != 0:
        said = (pip.stderr.strip().splitlines() or ["nothing"])[-1]
        raise FinePruneError(f"could not install {', '.join(packages)} into {venv} (offline? PyPI is needed once); "
                             f"pip said: {said}")
    return python


def _tfmot_env():
    return {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def run_tfmot_worker(kind, root, split, jobs, users, out):
    import numpy as np

    from tflite_fineprune.errors import FinePruneError

    python = tfmot_python()
    job_file, result_file = out / f"tfmot_{kind}_job.npz", out / f"tfmot_{kind}_rows.json"
    arrays = {f"w{i}": w for i, w in enumerate(split.classifier.get_weights())}
    for u, job in enumerate(jobs):
        arrays.update({f"u{u}_{key}": job[key] for key in ("adapt_x", "adapt_y", "eval_x", "eval_y",
                                                            "others_x", "others_y")})
    np.savez(job_file, **arrays)
    spec = {"kind": kind, "weights": len(split.classifier.get_weights()), "users": len(jobs),
            "softmax": split.softmax, "sparsity": TFMOT_SPARSITY[kind], **TFMOT}
    if kind == "cifar":
        from tflite_fineprune.demo_data import MLPERF_RESNET8, data_root

        spec["h5"] = str(data_root(root) / MLPERF_RESNET8)
    start = time.perf_counter()
    done = subprocess.run(["nice", "-n", "10", str(python), __file__, "--tfmot-worker", json.dumps(spec),
                           str(job_file), str(result_file)], env=_tfmot_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise FinePruneError(f"the tfmot process failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    results = json.loads(result_file.read_text())
    print(f"tfmot: {len(jobs)} users in {time.perf_counter() - start:.0f} s; legacy-Keras dense accuracy equals "
          f"Keras 3's for every user: {all(abs(r['dense'] - j['dense']) < 1e-9 for r, j in zip(results, jobs))}")
    by_name = {u.name: u for u in users}
    label = f"tfmot prune {spec['sparsity']:.1%} + labels"
    return [row(by_name[j["name"]], label, j["dense"], r["accuracy"], j["dense_others"], r["others"],
                r["weight_sparsity"]) for r, j in zip(results, jobs)]


def _legacy_classifier(spec, tfk):
    """The classifier rebuilt in tf-keras, layer for layer as the converters build it in Keras 3."""
    layers, kind = tfk.layers, spec["kind"]
    if kind == "cifar":  # the MLPerf ResNet-8 is a tf.keras .h5: tf-keras loads its architecture as it is
        return tfk.models.load_model(spec["h5"], compile=False)
    if kind == "speech":  # converters.kws_model.ds_cnn (MLPerf Tiny DS-CNN); the MFCCs come from the main process
        inputs = tfk.Input((49, 10, 1))
        x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same")(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Dropout(0.2)(x)
        for _ in range(4):
            x = layers.DepthwiseConv2D((3, 3), padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
            x = layers.Conv2D(64, (1, 1), padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
        x = layers.Dropout(0.4)(x)
        x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]))(x)
        x = layers.Flatten()(x)
        return tfk.Model(inputs, layers.Dense(12, activation="softmax")(x))
    if kind == "fashion":  # tflite_fineprune.converters.fashion.fashion_mlp
        inputs = tfk.Input((28, 28))
        x = layers.Flatten()(layers.Rescaling(1 / 255.0)(inputs))
        for width in (1024, 1024):
            x = layers.Dense(width, activation="relu")(x)
        return tfk.Model(inputs, layers.Dense(10)(x))
    raise ValueError(kind)


def tfmot_worker(spec, job_file, result_file):
    """Prune + fine-tune each user's copy with labels; runs under TF_USE_LEGACY_KERAS=1 in the tfmot venv."""
    import numpy as np
    import tensorflow_model_optimization as tfmot
    import tf_keras as tfk

    spec = json.loads(spec)
    job = np.load(job_file)
    weights = [job[f"w{i}"] for i in range(spec["weights"])]
    prunable = (tfk.layers.Conv2D, tfk.layers.DepthwiseConv2D, tfk.layers.Dense)
    results = []
    for u in range(spec["users"]):
        data = {key: job[f"u{u}_{key}"] for key in ("adapt_x", "adapt_y", "eval_x", "eval_y", "others_x", "others_y")}
        tfk.backend.clear_session()
        tfk.utils.set_random_seed(u)
        model = _legacy_classifier(spec, tfk)
        model.set_weights(weights)
        dense = float(np.mean(model.predict(data["eval_x"], verbose=0).argmax(1) == data["eval_y"]))
        schedule = tfmot.sparsity.keras.ConstantSparsity(spec["sparsity"], begin_step=1)  # step 1 = first batch
        pruned = tfk.models.clone_model(model, clone_function=lambda layer: (  # the tfmot guide's way to prune
            tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)  # every kernel and keep
            if isinstance(layer, prunable) else layer))  # the other layers (Rescaling, BN) as they are
        for layer in pruned.layers:  # a few labelled samples per user: keep the trained BN statistics
            if isinstance(layer, tfk.layers.BatchNormalization):
                layer.trainable = False
        pruned.compile(optimizer=tfk.optimizers.Adam(spec["learning_rate"]),
                       loss=tfk.losses.SparseCategoricalCrossentropy(from_logits=not spec["softmax"]))
        pruned.fit(data["adapt_x"], data["adapt_y"], epochs=spec["epochs"], batch_size=spec["batch_size"],
                   shuffle=True, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        final = tfmot.sparsity.keras.strip_pruning(pruned)
        kernels = [layer.get_weights()[0] for layer in final.layers if isinstance(layer, prunable)]
        results.append({
            "dense": dense,
            "accuracy": float(np.mean(final.predict(data["eval_x"], verbose=0).argmax(1) == data["eval_y"])),
            "others": float(np.mean(final.predict(data["others_x"], verbose=0).argmax(1) == data["others_y"])),
            "weight_sparsity": float(sum(np.sum(k == 0) for k in kernels) / sum(k.size for k in kernels)),
        })
    pathlib.Path(result_file).write_text(json.dumps(results))


# ---------------------------------------------------------------- command line

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--tfmot-worker":
        return tfmot_worker(*sys.argv[2:5])
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="fashion,cifar,speech")
    parser.add_argument("--data")
    parser.add_argument("--users", type=int, default=10 ** 6, help="only the first N users (development)")
    parser.add_argument("--tfmot-users", type=int, default=10, help="the tfmot row covers the first N users")
    parser.add_argument("--no-tfmot", action="store_true", help="skip the tfmot row (no venv needed)")
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args()

    from tflite_fineprune.converters import demo
    from tflite_fineprune.converters.evaluation import format_summary, summarize, write_csv

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds.split(","):
        start = time.perf_counter()
        root = demo.find_data(args.data, kind == "cifar") if kind != "fashion" else None
        auto_rows, dense_rows, head_rows, tfmot_rows = label_rows(kind, root, out, args.users, args.tfmot_users,
                                                                   not args.no_tfmot)
        every = dense_rows + auto_rows + head_rows
        print(f"\n=== {kind}: {len(dense_rows)} users")
        print(format_summary(summarize(every)))
        if tfmot_rows:
            names = {r["user"] for r in tfmot_rows}
            print(f"\n=== {kind}: the first {len(names)} users (the tfmot row's)")
            print(format_summary(summarize([r for r in every if r["user"] in names] + tfmot_rows)))
        write_csv(every + tfmot_rows, out / f"label_references_{kind}.csv")
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--tfmot-worker"]:  # the tfmot venv: no project imports there
        main()
    else:
        sys.path.insert(0, str(ROOT))
        from tflite_fineprune.errors import FinePruneError

        try:
            main()
        except FinePruneError as exc:  # data missing, pip offline, the tfmot process failed: one line, exit 2
            print(f"label_references.py: error: {exc}", file=sys.stderr)
            sys.exit(2)
