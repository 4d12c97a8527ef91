"""`tflite-fineprune demo`: personalize real pretrained models for real users, with honest numbers.

Speech (default): the MLPerf Tiny DS-CNN with its MFCC front-end inside, one
user per Speech Commands speaker with at least 30 test clips. Vision
(`--vision`): the MLPerf Tiny ResNet-8 behind a uint8 front-end, users who
only meet 2, 3 or 5 CIFAR-10 classes. Fashion (`--fashion`): an
over-parameterized 784-1024-1024 MLP trained here on Fashion-MNIST (about a
minute), with class-subset users of its test set; `--fashion-cnn`: a wide
BatchNorm convnet (tflite_fineprune/converters/fashion_cnn.py, trained once and cached) with
15 such users. Each user's adaptation half is observed
without labels through the TFLite interpreter; the evaluation half is never
observed. Every demo's users are file paths (Fashion-MNIST's test images
are written out as `.npy` files first) evaluated by the population engine
(`tflite_fineprune/population`, `engine_rows`).
"""

import pathlib
import time

import numpy as np

from ..progress import print_stage
from .evaluation import Recipe, class_subset_users, plot_users, speaker_users, write_csv
from ..population import format_summary, summarize
from ..auto_recipe import AutoRule
from ..demo_data import CIFAR10_TEST, MLPERF_KWS, MLPERF_RESNET8, SPEECH_COMMANDS_TEST, require_data

SPEECH_DATA = (SPEECH_COMMANDS_TEST, MLPERF_KWS)
VISION_DATA = (CIFAR10_TEST, MLPERF_RESNET8)

# The default is the label-free automatic choice (`Personalizer.personalize`, docs/personalization.md);
# the other rows are the recipes once picked by hand per kind of user from this demo's own evaluation.
AUTO = Recipe("auto (default)", rule=AutoRule())
SPEECH_RECIPES = (
    AUTO,
    Recipe("dense"),
    Recipe("prune 2% units", sparsity=0.02),
    Recipe("prune 5% units", sparsity=0.05),
    Recipe("drop unseen classes", min_class_fraction=1e-6),
)
VISION_RECIPES = (
    AUTO,
    Recipe("classes <10%", min_class_fraction=0.10),
    Recipe("classes <5%", min_class_fraction=0.05),
    Recipe("prune 2% units", sparsity=0.02),
    Recipe("prune 5% + classes <10%", sparsity=0.05, min_class_fraction=0.10),
)

FASHION_RECIPES = (
    AUTO,
    Recipe("prune 50% + classes <10%", sparsity=0.5, min_class_fraction=0.10),
    Recipe("prune 50% units", sparsity=0.5),
    Recipe("random 50% units (control)", sparsity=0.5, random=True),
    Recipe("prune 70% units", sparsity=0.7),
    Recipe("classes <10%", min_class_fraction=0.10),
)

FASHION_CNN_RECIPES = (
    AUTO,
    # step 5 at a looser agreement (benchmarks/convnet_room.py measures the rules side by side)
    Recipe("auto, agreement 98%", rule=AutoRule(magnitude_agreement=0.98)),
    Recipe("prune 50% units", sparsity=0.5),
    Recipe("classes <10%", min_class_fraction=0.10),
)


def find_data(given=None, vision=False):
    """The demo data folder holding what the speech (or vision) demo needs."""
    return require_data(VISION_DATA if vision else SPEECH_DATA, given,
                        "tflite-fineprune demo" + (" --vision" if vision else ""))


def speech_users(root, labels, load_clip):
    """The speech demo's users: every speaker with ≥ 30 clips in the Speech Commands test split under `root`.

    `load_clip(path)` gives one model input (`str` keeps the paths: the Android assets copy the files).
    """
    return speaker_users(pathlib.Path(root) / SPEECH_DATA[0], labels, load_clip)


def vision_users(images_by_class):
    """The vision demo's users: 10 each who meet 2, 3 or 5 classes, 50 adaptation + 50 evaluation images a class.

    `images_by_class`: the CIFAR-10 test images (or their paths) of each class in file-name order; the first
    `REFERENCE_PER_CLASS` of each are the export's BatchNorm reference pool, never a user's.
    """
    from .vision import REFERENCE_PER_CLASS

    return class_subset_users([images[REFERENCE_PER_CLASS:] for images in images_by_class])


def _speech(root, out):
    from .speech import KWS_LABELS, export_mlperf

    model = out / "kws_ds_cnn.tflite"
    print(export_mlperf(model, root, prune_outputs=True, on_stage=print_stage))
    users = speech_users(root, list(KWS_LABELS), str)  # file paths: the population engine's workers load them
    return model, users, SPEECH_RECIPES, "speaker users (Speech Commands test split), MLPerf Tiny DS-CNN"


def _vision(root, out):
    from .vision import export_mlperf
    from ..demo_data import CIFAR10_LABELS

    model = out / "resnet8_uint8.tflite"
    print(export_mlperf(model, root, prune_outputs=True, on_stage=print_stage))  # BN reference: first images/class
    folder = pathlib.Path(root) / VISION_DATA[0]
    users = vision_users([np.array([str(f) for f in sorted((folder / name).glob("*.jpg"))]) for name in CIFAR10_LABELS])
    return model, users, VISION_RECIPES, "class-subset users (CIFAR-10 test images), MLPerf Tiny ResNet-8"


def _sample_files(x, y, folder):
    """One `.npy` file per sample, `folder/<class>/<n>.npy`; per class, an array of the paths in sample order."""
    paths = []
    for label in range(int(y.max()) + 1):
        target = pathlib.Path(folder) / str(label)
        target.mkdir(parents=True, exist_ok=True)
        paths.append(np.array([str(target / f"{n:05d}.npy") for n in range(int(np.sum(y == label)))]))
        for path, sample in zip(paths[-1], x[y == label]):
            np.save(path, sample)
    return paths


def engine_rows(model, users, recipes, others_per_user=200, seed=0):
    """Rows of `evaluate_users` for users whose samples are file paths, from the population engine
    (tflite_fineprune/population): the demo's users, splits and others, evaluated by the one harness."""
    from .evaluation import others_sets
    from ..population import UserSpec, evaluate_population

    others = others_sets(users, others_per_user, seed)
    # seed + i: the random control's masks per user, as `evaluate_users` draws them
    specs = [UserSpec(i, user.name, tuple(map(str, user.adapt_x)), tuple(map(str, user.eval_x)),
                      tuple(int(y) for y in user.eval_y), tuple(map(str, other_x)), tuple(int(y) for y in other_y),
                      seed=seed + i)
             for i, (user, (other_x, other_y)) in enumerate(zip(users, others))]
    return evaluate_population(model, specs, recipes=recipes, seed=seed).rows


def _loaded(personalizer, user):
    """`user` with its adaptation and evaluation samples read from their files (when they are paths)."""
    import dataclasses

    from ..population.worker import load_files

    if user.adapt_x.dtype.kind not in "US":
        return user
    return dataclasses.replace(user, adapt_x=load_files(list(map(str, user.adapt_x)), personalizer, None)[0],
                               eval_x=load_files(list(map(str, user.eval_x)), personalizer, None)[0])


def _fashion(root, out):
    from .fashion import export_fashion_mlp, load_fashion_mnist

    model = out / "fashion_mlp.tflite"
    report, accuracy = export_fashion_mlp(model, out / "fashion_mlp.keras", root=root, prune_outputs=True,
                                          on_stage=print_stage)
    trained = "loaded the cached model" if accuracy is None else f"trained: test accuracy {accuracy:.4f}"
    print(f"{report}; {trained}")
    x, y = load_fashion_mnist("test", root)
    files = _sample_files(x, y, out / "fashion_test")  # the population engine's workers read files
    users = class_subset_users(files, adapt_per_class=100, eval_per_class=100)
    return model, users, FASHION_RECIPES, "class-subset users (Fashion-MNIST test images), 784-1024-1024 MLP"


def _fashion_cnn(root, out, batchnorm=True):
    from .fashion import load_fashion_mnist
    from .fashion_cnn import export_fashion_cnn

    model = out / f"fashion_cnn_{'bn' if batchnorm else 'plain'}.tflite"
    report, accuracy = export_fashion_cnn(model, batchnorm=batchnorm, root=root, prune_outputs=True,
                                          on_stage=print_stage)
    trained = "loaded the cached model" if accuracy is None else f"trained: test accuracy {accuracy:.4f}"
    print(f"{report}; {trained}")
    x, y = load_fashion_mnist("test", root)
    files = _sample_files(x, y, out / "fashion_test")  # the population engine's workers read files
    # 15 users of 40 + 40 images a class: a convnet costs ~50× the MLP per image on a CPU.
    users = class_subset_users(files, users_per_count=5, adapt_per_class=40, eval_per_class=40)
    return model, users, FASHION_CNN_RECIPES, ("class-subset users (Fashion-MNIST test images), wide "
                                               + ("BatchNorm " if batchnorm else "") + "convnet")


def per_user_table(rows, recipes):
    """One line per user: adaptation/evaluation sizes, dense accuracy, accuracy under each recipe (#1, #2, …)."""
    legend = "recipes: " + "; ".join(f"#{i + 1} = {r.name}" for i, r in enumerate(recipes))
    header = f"{'user':<20} {'adapt':>5} {'eval':>5} {'dense':>6} " + " ".join(f"{'#' + str(i + 1):>6}"
                                                                          for i in range(len(recipes)))
    lines = [legend, header, "-" * len(header)]
    for user in dict.fromkeys(r["user"] for r in rows):
        part = {r["recipe"]: r for r in rows if r["user"] == user}
        first = next(iter(part.values()))
        lines.append(f"{user[:20]:<20} {first['adapt']:>5} {first['eval']:>5} {first['dense_accuracy']:>6.3f} "
                     + " ".join(f"{part[r.name]['accuracy']:>6.3f}" for r in recipes))
    return "\n".join(lines)


def _seconds_per_sample(personalizer, x, repeats=5):
    """Median seconds per sample of `predict` over `x` (the interpreter warmed up first)."""
    import statistics

    personalizer.predict(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        personalizer.predict(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / len(x)


def slim_summary(model, users, rows, auto, path):
    """What `auto` removed, and what the slimmed file of the median user (by MACs removed) measures."""
    from ..runtime import Personalizer

    removed = {r["user"]: r["mac_sparsity"] for r in rows if r["recipe"] == auto.name}
    order = sorted(removed, key=lambda name: (removed[name], name))
    personalizer = Personalizer(model)
    median = _loaded(personalizer, next(u for u in users if u.name == order[len(order) // 2]))
    auto.apply(personalizer, median.adapt_x)
    slim = personalizer.slim(path)
    personalizer.reset()
    dense_path = pathlib.Path(path).with_name(pathlib.Path(path).stem + "_dense.tflite")
    dense = personalizer.slim(dense_path)  # nothing pruned: the plain model an app without personalization ships
    slim_time = _seconds_per_sample(Personalizer(path), median.eval_x)
    dense_time = _seconds_per_sample(Personalizer(dense_path), median.eval_x)
    return (f"\n{auto.name}: removed {np.mean(list(removed.values())):.1%} of MACs on average "
            f"({min(removed.values()):.1%} to {max(removed.values()):.1%} per user). The median user's slim file "
            f"({median.name}, {removed[median.name]:.1%} of MACs removed): {slim.slim_bytes / 1e6:.2f} MB vs "
            f"{dense.slim_bytes / 1e6:.2f} MB dense, {slim_time * 1e3:.3f} vs {dense_time * 1e3:.3f} ms per sample "
            f"({dense_time / slim_time:.1f}× faster; {personalizer.backend}, batches of {personalizer.batch_size}; "
            f"{path})")


def run_demo(data=None, out="fineprune-demo", vision=False, fashion=False, fashion_cnn=False):
    start = time.perf_counter()
    if fashion or fashion_cnn:
        from .fashion import find_fashion_mnist

        root = find_fashion_mnist(data)  # --data is honoured: the folder (or DATA/fashion-mnist) with the files
    else:
        root = find_data(data, vision)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    build = _fashion_cnn if fashion_cnn else _fashion if fashion else _vision if vision else _speech
    model, users, recipes, title = build(root, out)
    print(f"{len(users)} {title}; recipes: {', '.join(r.name for r in recipes)}")
    rows = engine_rows(model, users, recipes)
    print(per_user_table(rows, recipes))
    print(f"\nsummary over {len(users)} users: mean accuracy dense → personalized, worst decile of users, "
          "users helped/hurt, accuracy on other users' data, sparsity")
    print(format_summary(summarize(rows)))
    kind = "fashion_cnn" if fashion_cnn else "fashion" if fashion else "vision" if vision else "speech"
    print(slim_summary(model, users, rows, recipes[0], out / f"{kind}_auto_slim.tflite"))
    write_csv(rows, out / f"{kind}_users.csv")
    plot_users(rows, out / f"{kind}_users.png", title)
    print(f"\nwrote {out / f'{kind}_users.csv'} and {out / f'{kind}_users.png'} in {time.perf_counter() - start:.0f} s")
