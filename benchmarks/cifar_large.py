"""A model with room to prune: an over-parameterized ResNet-18-like net trained here on CIFAR-10, then personalized.

The paper's numbers (Fine-Pruning: ResNet50 on ImageNet class subsets) live on models we cannot download. This
is the closest offline stand-in: a ResNet-18 at 32×32 (width `--base` channels in the first stage), trained on
part of the only CIFAR-10 here (the test split as JPEGs), then exported like `converters.vision mlperf` exports
ResNet-8 (uint8 pixels in, BatchNorm reference data, `prune_outputs`) and personalized for class-subset users
through `tflite_fineprune.converters.evaluation`'s harness.

The images of each class are split by their file number n (`<class>/<n>.jpg`, n = 0..999), so no training
image is ever a user's or the reference pool's:

    n   0– 99   the export's BatchNorm reference pool (as `tflite_fineprune.converters.vision` uses for ResNet-8)
    n 100–299   users: adaptation and evaluation images, and the held-out accuracy `train` prints
    n 300–999   training (7,000 images)

Commands (never run in CI; docs/large_model.md has what they printed):

    python benchmarks/cifar_large.py [--out benchmarks/out] train [--minutes 45 | --epochs 15] [--base 32]
    python benchmarks/cifar_large.py [--out benchmarks/out] personalize [--users-per-count 10]

`train` writes OUT/cifar_resnet18.keras (after every epoch, so an early stop still leaves a model) and prints
train and held-out accuracy. `personalize` exports it to OUT/cifar_resnet18.tflite and prints per-user mean
accuracy and MACs removed for every row of `ROWS`, the spread of unit activity,
then the slimmed user model's size and speed against dense
under tflite-runtime 2.14 (the python of `$FINEPRUNE_TFLITE_RUNTIME_PYTHON` or `--runtime-python`, through
benchmarks/runtime_latency.py).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.converters.evaluation import (Recipe, class_subset_users, evaluate_users, format_summary,  # noqa: E402
                                         summarize, write_csv)
from tflite_fineprune.progress import print_stage  # noqa: E402
from tflite_fineprune.auto_recipe import AutoRule  # noqa: E402
from tflite_fineprune.demo_data import CIFAR10_LABELS, CIFAR10_TEST, require_data  # noqa: E402

REFERENCE = range(0, 100)
USERS = range(100, 300)
TRAIN = range(300, 1000)
MODEL_NAME = "cifar_resnet18"


def load_cifar_split(data=None, labels=CIFAR10_LABELS):
    """{"reference", "users", "train"}: one uint8 `[n, 32, 32, 3]` array per class, images in file-number order.

    Split by the number in each file name (not the lexicographic file order), see the module docstring.
    """
    from PIL import Image

    root = require_data([CIFAR10_TEST], data, "benchmarks/cifar_large.py") / CIFAR10_TEST
    split = {"reference": [], "users": [], "train": []}
    for name in labels:
        files = {int(f.stem): f for f in (root / name).glob("*.jpg")}
        for part, numbers in (("reference", REFERENCE), ("users", USERS), ("train", TRAIN)):
            missing = [n for n in numbers if n not in files]
            if missing:
                raise SystemExit(f"{root / name}: expected images {numbers.start}..{numbers.stop - 1}.jpg; "
                                 f"missing {len(missing)} (first {missing[0]}.jpg)")
            split[part].append(np.stack([np.asarray(Image.open(files[n]).convert("RGB")) for n in numbers]))
    return split


def flat(by_class):
    return np.concatenate(by_class), np.concatenate([np.full(len(x), c) for c, x in enumerate(by_class)])


# --- the model -------------------------------------------------------------------------------------------------

def resnet18(base=32, classes=10):
    """ResNet-18 for 32×32 inputs (3×3 stem, no max-pool; stages of base, 2·base, 4·base, 8·base channels).

    Input: float pixels 0–255 (as the MLPerf ResNet-8), scaled inside. No dropout (dropout before BN
    miscalibrates its statistics, /work/shared/findings/speaker-adaptation.md).
    """
    import keras
    from keras import layers

    def conv_bn(x, filters, kernel, stride, name):
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False,
                          kernel_initializer="he_normal", name=f"{name}_conv")(x)
        return layers.BatchNormalization(name=f"{name}_bn")(x)

    pixels = keras.Input((32, 32, 3), name="image")
    x = layers.Rescaling(1 / 255.0, name="scale")(pixels)
    x = layers.ReLU(name="stem_relu")(conv_bn(x, base, 3, 1, "stem"))
    for stage, filters in enumerate((base, 2 * base, 4 * base, 8 * base)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            name = f"s{stage + 1}b{block + 1}"
            y = layers.ReLU(name=f"{name}_relu1")(conv_bn(x, filters, 3, stride, f"{name}_1"))
            y = conv_bn(y, filters, 3, 1, f"{name}_2")
            shortcut = conv_bn(x, filters, 1, stride, f"{name}_proj") if stride != 1 or x.shape[-1] != filters else x
            x = layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(pixels, layers.Dense(classes, name="logits")(x), name=MODEL_NAME)


def conv_macs(model):
    """Multiply-accumulates of one image through the Conv2D and Dense layers."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            total += h * w * c_out * int(np.prod(layer.kernel.shape[:3]))
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def recalibrate_batchnorm(model, images, batch=250):
    """Each BatchNormalization's moving statistics := those of its input in inference mode, layer by layer in
    graph order (each BN sees its input with the earlier BNs already recalibrated)."""
    import keras

    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        probe = keras.Model(model.input, layer.input)
        x = np.concatenate([np.asarray(probe(images[i:i + batch], training=False))
                            for i in range(0, len(images), batch)])
        layer.moving_mean.assign(x.mean(axis=(0, 1, 2)))
        layer.moving_variance.assign(x.var(axis=(0, 1, 2)))


def accuracy(model, x, y, batch=250):
    logits = np.concatenate([np.asarray(model(x[i:i + batch], training=False)) for i in range(0, len(x), batch)])
    return float(np.mean(logits.argmax(1) == y))


def augmented(x, y, batch, seed):
    """tf.data: random crop of the 4-pixel zero-padded image, random horizontal flip, shuffled each epoch."""
    import tensorflow as tf

    def augment(image, label):
        image = tf.image.pad_to_bounding_box(image, 4, 4, 40, 40)
        image = tf.image.random_crop(image, (32, 32, 3))
        return tf.cast(tf.image.random_flip_left_right(image), tf.float32), label

    return (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .map(augment, num_parallel_calls=2).batch(batch).prefetch(2))


def train(args):
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{MODEL_NAME}.keras"
    split = load_cifar_split(args.data)
    train_x, train_y = flat(split["train"])
    held_x, held_y = flat(split["users"])
    model = resnet18(args.base)
    print(f"ResNet-18 base {args.base}: {model.count_params():,} parameters, {conv_macs(model) / 1e6:.1f} M MACs "
          f"per image; training on {len(train_x)} images (n {TRAIN.start}–{TRAIN.stop - 1} of each class), "
          + (f"{args.minutes} minutes" if args.minutes else f"{args.epochs} epochs"), flush=True)
    steps = args.steps or int(np.ceil(len(train_x) / args.batch))
    model.compile(keras.optimizers.SGD(args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    data = augmented(train_x, train_y, args.batch, args.seed)
    if args.steps:
        data = data.repeat().take(args.steps)
    probe_x, probe_y = held_x[::4], held_y[::4]  # a quarter of the held-out pool, per epoch: progress only

    class Schedule(keras.callbacks.Callback):
        """One epoch of linear warm-up, then cosine decay to 0 over the epochs, or over `--minutes` of wall
        time (then training stops when the time is up: the schedule ends annealed wherever the budget ends)."""

        def on_train_begin(self, logs=None):
            self.begin, self.step = time.perf_counter(), 0

        def on_train_batch_begin(self, batch, logs=None):
            if args.minutes:
                progress = (time.perf_counter() - self.begin) / (60 * args.minutes)
                if progress >= 1:
                    self.model.stop_training = True
            else:
                progress = self.step / (args.epochs * steps)
            warmup = min(1.0, (self.step + 1) / steps)
            self.model.optimizer.learning_rate = args.lr * warmup * 0.5 * (1 + np.cos(np.pi * min(progress, 1)))
            self.step += 1

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.model.save(path)  # every epoch: a stopped run still leaves a model
            print(f"epoch {epoch + 1}: {time.perf_counter() - self.start:.0f} s, loss {logs['loss']:.3f}, "
                  f"train (augmented) {logs['accuracy']:.3f}, held-out quarter "
                  f"{accuracy(self.model, probe_x, probe_y):.3f}, lr {float(self.model.optimizer.learning_rate):.4f};"
                  f" saved {path}", flush=True)

    start = time.perf_counter()
    model.fit(data, epochs=10_000 if args.minutes else args.epochs, verbose=0, callbacks=[Schedule()])
    recalibrate_batchnorm(model, train_x[np.random.default_rng(args.seed).permutation(len(train_x))[:1000]]
                          .astype(np.float32))
    model.save(path)
    ref_x, ref_y = flat(split["reference"])
    print(f"trained in {(time.perf_counter() - start) / 60:.1f} min; BN recalibrated in inference mode on 1000 "
          f"training images; saved {path}\n"
          f"accuracy: train {accuracy(model, train_x.astype(np.float32), train_y):.4f}, "
          f"held-out (users' pool n {USERS.start}–{USERS.stop - 1}) {accuracy(model, held_x, held_y):.4f}, "
          f"reference pool (n {REFERENCE.start}–{REFERENCE.stop - 1}) {accuracy(model, ref_x, ref_y):.4f}")


# --- personalization ---------------------------------------------------------------------------------------

# Class exclusion alone: `personalize`'s class test, with dormant pruning and the BatchNorm shift switched off.
CLASS_EXCLUSION = AutoRule(dormant_threshold=0.0, normalization_strength=0.0)


_EXCLUDED = {}  # (model file, sha1 of the adaptation images) → the state after class exclusion


def class_excluded(personalizer, adapt_x):
    """`personalize(adapt_x, CLASS_EXCLUSION)`, or the state it left for the same model and images before (the
    rows below all start from it: one observation pass per user instead of one per row)."""
    key = (personalizer.model_path, hashlib.sha1(np.ascontiguousarray(adapt_x).tobytes()).hexdigest())
    if key in _EXCLUDED:
        personalizer.set_state(_EXCLUDED[key])
    else:
        personalizer.personalize(adapt_x, CLASS_EXCLUSION, progress=False)
        _EXCLUDED.clear()  # one user at a time
        _EXCLUDED[key] = personalizer.get_state()


@dataclasses.dataclass(frozen=True)
class OnClassExclusion:
    """A row: class exclusion (`CLASS_EXCLUSION`), then `prune(sparsity)`: each hidden layer's least active units
    (activity counted on all the user's adaptation images), on top of the excluded classes.

    Like `evaluation.Recipe`, anything with a `name` and `apply(personalizer, adapt_x, seed)` is a row: a new
    pruning criterion is one more entry in `ROWS`.
    """

    name: str
    sparsity: float = 0.0
    magnitude: bool = False  # rank by mean |activation| × outgoing weight norm (`prune_magnitude`) instead

    def apply(self, personalizer, adapt_x, seed=0):
        class_excluded(personalizer, adapt_x)
        if self.sparsity:
            (personalizer.prune_magnitude if self.magnitude else personalizer.prune)(self.sparsity)


# The dense model is every row's `dense` column; the rows are what a user's copy becomes.
ROWS = (
    OnClassExclusion("class exclusion only"),
    Recipe("auto (personalize)", rule=AutoRule()),
    *(OnClassExclusion(f"class excl. + prune {rate:.0%} units", rate) for rate in (0.05, 0.1, 0.3, 0.5, 0.7)),
    *(OnClassExclusion(f"class excl. + magnitude {rate:.0%}", rate, magnitude=True) for rate in (0.1, 0.3, 0.5, 0.7)),
)


def export(out, split, reexport=False):
    """OUT/cifar_resnet18.tflite from the trained model, as `converters.vision mlperf` exports ResNet-8: uint8
    pixels in, the reference pool (n 0–99 of each class) as BatchNorm reference data, prunable classes."""
    keras_path, path = out / f"{MODEL_NAME}.keras", out / f"{MODEL_NAME}.tflite"
    if path.exists() and path.stat().st_mtime > keras_path.stat().st_mtime and not reexport:
        print(f"reusing {path} (newer than {keras_path.name}; --reexport to rebuild it)")
        return path
    import keras

    from tflite_fineprune.converters.vision import with_frontend
    from tflite_fineprune import export_model

    model = with_frontend(keras.models.load_model(keras_path, compile=False))
    print(export_model(model, path, labels=CIFAR10_LABELS, prune_outputs=True,
                       reference_data=np.concatenate(split["reference"]), on_stage=print_stage))
    return path


def time_on_tflite_runtime(files, python, threads, repeats, batches, sample):
    """{file: {batch: median seconds per `infer` call}} under tflite-runtime, files interleaved call by call."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(pathlib.Path(tmp) / "x.npy", sample)
        script = pathlib.Path(__file__).with_name("runtime_latency.py")
        command = [python, str(script), str(pathlib.Path(tmp) / "x.npy"),
                   "--threads", str(threads), "--repeats", str(repeats), "--batches", ",".join(map(str, batches)),
                   *map(str, files)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"timing under {python} failed:\n{result.stderr[-3000:]}")
    return {pathlib.Path(f): {int(b): t for b, t in times.items()} for f, times in json.loads(result.stdout).items()}


def slim_and_time(personalizer, users, out, args):
    """For the first user of each class count: each row's slimmed file, its size and `infer` time vs dense."""
    slim_dir = out / "slim"
    slim_dir.mkdir(exist_ok=True)
    personalizer.reset()
    dense = personalizer.slim(slim_dir / "dense.tflite")
    sample = np.concatenate([u.eval_x for u in users])[:max(args.batches)]
    chosen = list({u.name.split("-")[0]: u for u in reversed(users)}.values())[::-1]
    lines, files = [], [pathlib.Path(dense.path)]
    for user in chosen:
        for i, row in enumerate(ROWS):
            row.apply(personalizer, user.adapt_x)
            masked = personalizer.predict(sample[:8])
            path = slim_dir / f"{user.name.split(':')[0]}-row{i + 1}.tflite"
            report = personalizer.slim(path)
            slim_out = Personalizer(path).predict(sample[:8])
            error = float(np.max(np.abs(slim_out - masked)) / max(np.max(np.abs(masked)), 1e-12))
            lines.append((user.name, row.name, report, error))
            files.append(path)
    personalizer.reset()
    times = time_on_tflite_runtime(files, args.runtime_python, args.threads, args.repeats, args.batches, sample)
    base = times[pathlib.Path(dense.path)]
    head = " ".join(f"{f'ms b{b}':>8} {'speed-up':>8}" for b in args.batches)
    print(f"\nslimmed user models (Personalizer.slim) under tflite-runtime 2.14, {args.threads} thread(s), median of "
          f"{args.repeats} interleaved `infer` calls; dense = the plain `infer` graph, "
          f"{dense.slim_bytes / 1e6:.2f} MB, "
          + ", ".join(f"{1e3 * base[b]:.2f} ms at batch {b}" for b in args.batches))
    header = f"{'user':<16} {'row':<31} {'MACs':>6} {'MB':>6} {'size':>6} {head} {'max err':>8}"
    print(header + "\n" + "-" * len(header))
    for (user, row, report, error), path in zip(lines, files[1:]):
        cells = " ".join(f"{1e3 * times[path][b]:>8.2f} {base[b] / times[path][b]:>7.2f}×" for b in args.batches)
        print(f"{user[:16]:<16} {row[:31]:<31} {report.mac_sparsity:>6.1%} {report.slim_bytes / 1e6:>6.2f} "
              f"{report.slim_bytes / dense.slim_bytes:>6.1%} {cells} {error:>8.1e}"
              + (f"  still masked: {sorted(report.still_masked)}" if report.still_masked else ""))


def activity_spread(personalizer, users):
    """Per hidden layer: how often its units fire on the users' adaptation images (what `prune` and
    `prune_dormant` rank by), pooled over users: the lowest, 10th percentile and median unit activity."""
    by_layer = {}
    for user in users:
        personalizer.reset()
        personalizer.observe(user.adapt_x, progress=False)
        for group in personalizer.groups:
            if group.role == "hidden":
                by_layer.setdefault(group.name, []).append(np.asarray(personalizer.activity[group.name]))
    personalizer.reset()
    lines = [f"{'layer':<14} {'units':>5} {'min':>6} {'p10':>6} {'median':>6} {'< 0.01':>6}"]
    for name, parts in by_layer.items():
        a = np.concatenate(parts)
        lines.append(f"{name:<14} {len(parts[0]):>5} {a.min():>6.3f} {np.quantile(a, 0.1):>6.3f} "
                     f"{np.median(a):>6.3f} {np.mean(a < 0.01):>6.1%}")
    return "\n".join(lines)


def personalize(args):
    from tflite_fineprune.converters.demo import per_user_table

    out = pathlib.Path(args.out)
    if not (out / f"{MODEL_NAME}.keras").exists():
        raise SystemExit(f"{out / f'{MODEL_NAME}.keras'} does not exist: run `python benchmarks/cifar_large.py "
                         f"--out {out} train` first")
    split = load_cifar_split(args.data)
    path = export(out, split, args.reexport)
    recipes = ROWS
    users = class_subset_users(split["users"], users_per_count=args.users_per_count, adapt_per_class=args.adapt,
                               eval_per_class=args.eval)
    print(f"{len(users)} class-subset users (2, 3, 5 classes; {args.adapt} adaptation + {args.eval} evaluation "
          f"images per class from n {USERS.start}–{USERS.stop - 1}); rows: {', '.join(r.name for r in recipes)}",
          flush=True)
    personalizer = Personalizer(path)
    start = time.perf_counter()
    rows = evaluate_users(personalizer, users, recipes, others_per_user=args.others)
    print(per_user_table(rows, recipes))
    print(f"\nsummary over {len(users)} users ({(time.perf_counter() - start) / 60:.1f} min): mean accuracy dense → "
          "personalized, worst decile of users, users helped/hurt, accuracy on other users' data, units/weights/MACs "
          "removed")
    print(format_summary(summarize(rows)))
    write_csv(rows, out / "cifar_large_users.csv")
    print(f"\nunit activity (fraction of image positions where a unit is > 0) on each user's adaptation images, "
          f"pooled over the {len(users)} users; `< 0.01` = dormant for `auto`:")
    print(activity_spread(personalizer, users))
    if args.no_timing or not args.runtime_python:
        print("\nno slimming/timing: " + ("--no-timing" if args.no_timing else
                                          "set FINEPRUNE_TFLITE_RUNTIME_PYTHON or --runtime-python"))
    else:
        slim_and_time(personalizer, users, out, args)


def positive(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def batches(text):
    return tuple(positive(part) for part in text.split(","))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="shared data folder (default: $FINEPRUNE_DATA or ../shared/data)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out"), help="where the models go")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("train", help="train the ResNet-18 on n 300–999 of each class")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--base", type=int, default=32, help="channels of the first stage (64 = the full ResNet-18)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=0, help="train for this wall time instead of --epochs")
    p.add_argument("--steps", type=int, default=0, help="steps per epoch (0: the whole training set; for timing)")
    p = commands.add_parser("personalize", help="export the trained model and personalize it for class-subset users")
    p.add_argument("--users-per-count", type=positive, default=10, help="users per class count 2, 3, 5 (default 10)")
    p.add_argument("--adapt", type=positive, default=40, help="adaptation images per class (default 40)")
    p.add_argument("--eval", type=positive, default=40, help="evaluation images per class (default 40)")
    p.add_argument("--others", type=positive, default=30, help="other users' images scored per user (default 30)")
    p.add_argument("--reexport", action="store_true", help="export again even if the .tflite is up to date")
    p.add_argument("--no-timing", action="store_true", help="skip slimming and timing")
    p.add_argument("--runtime-python", default=os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON"),
                   help="the tflite-runtime 2.14 venv's python that times the slimmed files "
                   "(default: $FINEPRUNE_TFLITE_RUNTIME_PYTHON; without either, no timing)")
    p.add_argument("--threads", type=positive, default=1, help="interpreter threads when timing (default 1)")
    p.add_argument("--repeats", type=positive, default=10, help="timed calls per file and batch (default 10)")
    p.add_argument("--batches", type=batches, default=(1, 8), help="comma-separated batch sizes (default 1,8)")
    args = parser.parse_args(argv)
    if args.command == "personalize" and args.adapt + args.eval > len(USERS):
        parser.error(f"--adapt + --eval must be at most {len(USERS)} (the users' images per class); "
                     f"got {args.adapt} + {args.eval}")
    if args.command == "train":
        train(args)
    else:
        personalize(args)


if __name__ == "__main__":
    sys.exit(main())
