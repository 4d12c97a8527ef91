"""How far to prune: the stopping rule of `personalize`'s step 5, old and new, on populations of users.

Per population, each user is personalized three times with the default `AutoRule` except for step 5:

* no step 5 — the reference the goal is measured against (steps 1–4 only);
* old rule — the largest rate at which the pruned model agrees with the unpruned one on ≥ 99 % of the
  user's samples (the rule before the bounds: `stop_max_disagreement` and `stop_max_shift` set to 1);
* new rule — the defaults (`tflite_fineprune/stopping.py`): also a 95 % Clopper–Pearson bound on the
  disagreement rate ≤ 3 % and the mean distribution shift + 1.645 standard errors ≤ 0.03.

Printed per population and rule: mean accuracy on the users' held-out halves, the worst decile of users,
how many users end more than 1 point below "no step 5" (and the worst such change), and the MACs removed.
Dense accuracy is the first row.

Populations (`--populations`):

* demo — the demo's users (`tflite-fineprune demo [--vision|--fashion]`);
* small — the demo's users with only 3, 5, 10, 15, 20 or 25 adaptation samples (a random subset, the same
  held-out half);
* medium — the same with 50, 100 or 150 adaptation samples;
* one-class — users who meet a single class (class-subset kinds only);
* imbalanced — users who meet 5 classes, one of them in 90 % of their samples, adaptation and held-out alike.

usage: python benchmarks/stopping_rule.py {fashion,cifar,speech} [--populations demo,small,...] [--users N]
                                         [--ablation]
"""

import argparse
import dataclasses
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tflite_fineprune.converters.evaluation import Recipe, User, class_subset_users, evaluate_users  # noqa: E402
from tflite_fineprune.auto_recipe import AutoRule  # noqa: E402

NO_STEP_5 = Recipe("no step 5", rule=AutoRule(magnitude_agreement=2.0))  # > 1: step 5 off
OLD_RULE = Recipe("old rule (99 % agreement)", rule=AutoRule(stop_max_disagreement=1.0, stop_max_shift=1.0))
NEW_RULE = Recipe("new rule (bounds)", rule=AutoRule())
RECIPES = (NO_STEP_5, OLD_RULE, NEW_RULE)
ABLATION = (  # --ablation: each bound of the new rule alone
    Recipe("disagreement bound alone", rule=AutoRule(stop_max_shift=1.0)),
    Recipe("shift bound alone", rule=AutoRule(stop_max_disagreement=1.0)),
    Recipe("no step 5, no BN shift", rule=AutoRule(magnitude_agreement=2.0, normalization_strength=0.0)),
)
SMALL, MEDIUM = (3, 5, 10, 15, 20, 25), (50, 100, 150)


def fewer_samples(users, sizes, seed=0):
    """Each user with only `sizes[i % len(sizes)]` of its adaptation samples, drawn at random; same held-out half."""
    rng = np.random.default_rng(seed)
    out = []
    for i, user in enumerate(users):
        size = min(sizes[i % len(sizes)], len(user.adapt_x))
        pick = np.sort(rng.choice(len(user.adapt_x), size=size, replace=False))
        out.append(User(f"{user.name}/n{size}", user.adapt_x[pick], user.eval_x, user.eval_y))
    return out


def imbalanced_users(images_by_class, users=10, classes=5, major=0.9, adapt=200, held_out=200, seed=0):
    """Users who meet `classes` classes, the first in `major` of their samples (adaptation and held-out alike)."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(users):
        chosen = rng.choice(len(images_by_class), size=classes, replace=False)
        share = [major] + [(1 - major) / (classes - 1)] * (classes - 1)
        parts = {"adapt": ([], []), "eval": ([], [])}
        for c, fraction in zip(chosen, share):
            order = rng.permutation(len(images_by_class[c]))
            a, e = int(round(adapt * fraction)), int(round(held_out * fraction))
            for name, (start, count) in (("adapt", (0, a)), ("eval", (a, e))):
                parts[name][0].append(images_by_class[c][order[start:start + count]])
                parts[name][1].append(np.full(count, c))
        out.append(User(f"imb{index:02d}:" + "+".join(map(str, chosen)), np.concatenate(parts["adapt"][0]),
                        np.concatenate(parts["eval"][0]), np.concatenate(parts["eval"][1])))
    return out


def _model_and_users(kind, out):
    """The demo's export of this kind's model, its users, and its images by class (None for speakers)."""
    from tflite_fineprune.converters import demo

    if kind == "fashion":
        from tflite_fineprune.converters.fashion import export_fashion_mlp, load_fashion_mnist

        path = out / "stopping_rule_fashion.tflite"
        export_fashion_mlp(path, out / "fashion_mlp.keras", prune_outputs=True)
        x, y = load_fashion_mnist("test")
        by_class = [x[y == c] for c in range(10)]
        return path, class_subset_users(by_class, adapt_per_class=100, eval_per_class=100), by_class, 100
    if kind == "cifar":
        from tflite_fineprune.converters.vision import REFERENCE_PER_CLASS, cifar_by_class, export_mlperf

        root = demo.find_data(None, True)
        path = out / "stopping_rule_resnet8.tflite"
        export_mlperf(path, root, prune_outputs=True)
        by_class = [images[REFERENCE_PER_CLASS:] for images in cifar_by_class(root)]
        return path, demo.vision_users(cifar_by_class(root)), by_class, 50
    from tflite_fineprune.converters.frontend import CLIP_SAMPLES, SAMPLE_RATE
    from tflite_fineprune.converters.speech import KWS_LABELS, export_mlperf
    from tflite_fineprune.datafiles import fit_audio, load_audio

    root = demo.find_data(None, False)
    path = out / "stopping_rule_kws.tflite"
    export_mlperf(path, root, prune_outputs=True)
    users = demo.speech_users(root, list(KWS_LABELS),
                              lambda f: fit_audio(f, *load_audio(f), (CLIP_SAMPLES,), SAMPLE_RATE))
    return path, users, None, 0


def populations(names, users, by_class, per_class):
    """Population name → users, for the names that apply to this kind."""
    built = {}
    for name in names:
        if name == "demo":
            built[name] = users
        elif name == "small":
            built[name] = fewer_samples(users, SMALL)
        elif name == "medium":
            built[name] = fewer_samples(users, MEDIUM)
        elif name == "one-class" and by_class is not None:
            built[name] = class_subset_users(by_class, class_counts=(1,), adapt_per_class=per_class,
                                             eval_per_class=per_class)
        elif name == "imbalanced" and by_class is not None:
            built[name] = imbalanced_users(by_class)
    return built


def table(name, rows, recipes=RECIPES):
    """The population's lines: dense, then each rule (see the module docstring)."""
    users = list(dict.fromkeys(r["user"] for r in rows))
    by = {(r["user"], r["recipe"]): r for r in rows}
    reference = np.array([by[u, NO_STEP_5.name]["accuracy"] for u in users])
    dense = np.array([by[u, NO_STEP_5.name]["dense_accuracy"] for u in users])
    sizes = [by[u, NO_STEP_5.name]["adapt"] for u in users]
    worst = max(1, int(round(0.1 * len(users))))
    lines = [f"\n{name}: {len(users)} users, {min(sizes)}–{max(sizes)} adaptation samples",
             f"{'':28} {'mean':>6} {'worst10%':>8} {'>1pt below no step 5':>21} {'MACs removed':>12}",
             f"{'dense':28} {dense.mean():6.3f} {np.sort(dense)[:worst].mean():8.3f}"]
    for recipe in recipes:
        accuracy = np.array([by[u, recipe.name]["accuracy"] for u in users])
        change = (accuracy - reference) * 100
        below = int(np.sum(change < -1))
        lines.append(f"{recipe.name:28} {accuracy.mean():6.3f} {np.sort(accuracy)[:worst].mean():8.3f} "
                     f"{below:>11d} (worst {change.min():+5.1f}) "
                     f"{np.mean([by[u, recipe.name]['mac_sparsity'] for u in users]):12.1%}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["fashion", "cifar", "speech"])
    parser.add_argument("--populations", default="demo,small,medium,one-class,imbalanced")
    parser.add_argument("--users", type=int, default=10 ** 6, help="only the first N users of each (development)")
    parser.add_argument("--out", default="benchmarks/out")
    parser.add_argument("--ablation", action="store_true", help="also each bound alone, and no BN shift")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path, users, by_class, per_class = _model_and_users(args.kind, out)
    from tflite_fineprune import Personalizer

    personalizer = Personalizer(path)
    print(f"{args.kind}: {path.name}; new rule = {dataclasses.asdict(NEW_RULE.rule)}")
    for name, members in populations(args.populations.split(","), users, by_class, per_class).items():
        start = time.perf_counter()
        recipes = RECIPES + (ABLATION if args.ablation else ())
        rows = evaluate_users(personalizer, members[:args.users], recipes, others_per_user=0, progress=False)
        print(table(name, rows, recipes) + f"\n({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
