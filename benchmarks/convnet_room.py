"""How much room a wide Fashion-MNIST convnet leaves to label-free pruning, per score and stopping rule.

The model: `tflite_fineprune/converters/fashion_cnn.py`
(Conv 64 → Conv 128 → pool → Conv 128 → pool → Dense 256 → Dense 10,
trained 2 epochs on the 60,000 training images and cached; `bn`: BatchNorm after each conv, exported with 500
training images as the reference pool; `plain`: without). Users: class-subset users of the test images (2, 3
or 5 classes; `--per-class` adaptation + as many evaluation images a class).

Per user: `personalize` with step 5 off (class test, dormant units, BN shift: the reference), then, on top of
its masks, each hidden layer's lowest-scoring live units are pruned to each rate of `auto_recipe.SPARSITY_STEPS`,
by four scores (each on the user's unlabeled adaptation images):

* activity — how often a unit is > 0, counted after BN and ReLU (`prune`);
* magnitude — mean |activation| after BN and ReLU × outgoing weight norm, the next BN folded into it
  (`prune_magnitude`, what step 5 uses);
* folded, before BN — mean |γ/σ · (z − μ)| × outgoing norm, z the conv's output before its BN: the BN-folded
  channel's input-driven part, without the constant β that keeps a BN channel "active" on any input;
* variation — the standard deviation of the unit's activation after BN and ReLU × outgoing norm: what the unit
  tells the next layer beyond a constant.

The last two are computed from the Keras model's activations (the dense model: the reference's dormant
masks are not applied there) and set as masks from the host; outgoing norms are computed here from the Keras
weights for this architecture, as `levers/magnitude/outgoing_norms.py` does in the export. Each pruned model is the
TFLite model. A score's scan ends once agreement falls below 0.9 (no rule printed goes past it).

Printed per score: each stopping rule's mean accuracy, change vs dense and vs the reference, users below
dense, mean / min MACs removed. Rules: `τ=…` the current rule (the largest rate before the first whose
agreement with the reference's predictions on the adaptation images falls below τ; 0.99 is the default), and
`any τ=…` the largest rate of the scan whose agreement is ≥ τ, failures before it allowed.

`--search` compares the searches instead (step 5 as a whole, its stopping rule as shipped): *uniform* —
`recipe.search_sparsity`, one magnitude rate for every layer; *layerwise* — `layer_search.search_layerwise`,
each layer its own rate, greedy by MACs per unit of distribution shift, on the magnitude ladder; *layerwise,
folded* — the same search on the ladder of the folded score (host masks). Printed per search: mean accuracy,
change vs dense and vs the reference, users below dense, users more than 1 point below the reference (issue
22's promise), MACs removed (mean, min, median), the median user's ideal speed-up 1 / (1 − MACs) and the mean
number of inference passes the search made. `--fine`: the layerwise searches climb `FINE_STEPS` (2.5 % steps
at first) instead of step 5's rates; `--time`: each user's slimmed layerwise file is timed against the dense one
under tflite-runtime, as `benchmarks/auto_slim.py` does.

usage: python benchmarks/convnet_room.py {bn,plain} [--users-per-count 5] [--per-class 40]
       [--search [--no-folded] [--fine] [--time [--repeats 10]]] [--out DIR]
"""

import argparse
import dataclasses
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from stopping_probe import host_masks  # noqa: E402 (this folder: the same layerwise policy from the host)
from tflite_fineprune.layer_search import search_layerwise  # noqa: E402
from tflite_fineprune.auto_recipe import SPARSITY_STEPS, AutoRule, search_sparsity  # noqa: E402
from tflite_fineprune.stopping import StoppingRule  # noqa: E402

SCORES = ("activity", "magnitude", "folded, before BN", "variation")
RULES = (("τ=0.99", 0.99, True), ("τ=0.98", 0.98, True), ("τ=0.95", 0.95, True),
         ("any τ=0.99", 0.99, False), ("any τ=0.98", 0.98, False))
REFERENCE_RULE = AutoRule(magnitude_agreement=2.0)  # > 1: step 5 off
SCAN_FLOOR = 0.9


def _bn_scale(model, name):
    bn = model.get_layer(name)
    return np.asarray(bn.gamma) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)


def _names(model):
    return [layer.name for layer in model.layers]


def outgoing_norms(model, groups):
    """Per hidden unit (mask order), the L2 norm of its outgoing weights, the consumer's BN scale folded in."""
    names = _names(model)
    consumer = {"conv1": "conv2", "conv2": "conv3", "conv3": "hidden", "hidden": "classes"}
    norms = []
    for g in groups:
        kernel = np.asarray(model.get_layer(consumer[g.name]).kernel, np.float64)
        bn = "bn" + consumer[g.name][-1]
        if consumer[g.name].startswith("conv") and bn in names:
            kernel = kernel * _bn_scale(model, bn)
        squared = np.sum(kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]) ** 2, axis=(0, 2))
        norms.append(np.sqrt(squared.reshape(-1, g.units).sum(axis=0)))  # after Flatten: channel = f % units
    return norms


def host_scores(model, groups, x):
    """{score: per-unit vector in mask order} for the two scores computed from Keras activations."""
    import keras

    names = _names(model)
    taps = []
    for g in groups:
        after = f"relu{g.name[-1]}" if g.name.startswith("conv") else g.name
        before = g.name
        taps += [model.get_layer(before).output, model.get_layer(after).output]
    values = keras.Model(model.inputs, taps).predict(x, batch_size=100, verbose=0)
    norms = outgoing_norms(model, groups)
    folded, variation = [], []
    for i, g in enumerate(groups):
        z, a = (np.reshape(v, (-1, g.units)).astype(np.float64) for v in values[2 * i:2 * i + 2])
        bn = "bn" + g.name[-1]
        if g.name.startswith("conv") and bn in names:
            layer = model.get_layer(bn)
            z = (z - np.asarray(layer.moving_mean)) * _bn_scale(model, bn)
        folded.append(np.mean(np.abs(z), axis=0) * norms[i])
        variation.append(np.std(a, axis=0) * norms[i])
    return {"folded, before BN": np.concatenate(folded), "variation": np.concatenate(variation)}


def measure_user(personalizer, model, user):
    """{score: [(rate, accuracy, agreement, macs removed)]} for one user, rate 0 being the reference."""
    personalizer.personalize(user.adapt_x, REFERENCE_RULE, progress=False)
    base = personalizer.get_state()
    reference = np.argmax(personalizer.predict(user.adapt_x), -1)
    hidden = personalizer.metadata.hidden_groups
    scores = host_scores(model, hidden, user.adapt_x)
    total = len(base.masks)

    def row(rate):
        agreement = float(np.mean(np.argmax(personalizer.predict(user.adapt_x), -1) == reference))
        accuracy = float(np.mean(np.argmax(personalizer.predict(user.eval_x), -1) == user.eval_y))
        return rate, accuracy, agreement, personalizer.sparsity().macs

    rows = {score: [row(0.0)] for score in SCORES}
    for score in SCORES:
        for rate in SPARSITY_STEPS:
            if score == "activity":
                personalizer.prune(rate)
            elif score == "magnitude":
                personalizer.prune_magnitude(rate)
            else:
                vector = np.zeros(total)
                vector[:len(scores[score])] = scores[score]
                personalizer.set_state(dataclasses.replace(
                    base, masks=host_masks(base, personalizer.metadata, vector, rate)))
            rows[score].append(row(rate))
            personalizer.set_state(base)
            if rows[score][-1][2] < SCAN_FLOOR:
                break
    return rows


SEARCHES = ("uniform", "layerwise", "layerwise, folded")
# --fine: the layerwise searches climb in smaller steps where one step of 10 % already flips predictions
FINE_STEPS = (0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5) + SPARSITY_STEPS[5:]


def measure_searches(personalizer, model, user, searches=SEARCHES, rule=None, slim_path=None, rates=SPARSITY_STEPS):
    """{search: (accuracy, macs removed, passes, per-layer rates)} for one user, plus the reference's accuracy.

    With `slim_path`, the layerwise search's model is slimmed there (`Personalizer.slim`).
    """
    rule = rule or StoppingRule()
    personalizer.personalize(user.adapt_x, REFERENCE_RULE, progress=False)
    base = personalizer.get_state()

    def accuracy():
        return float(np.mean(np.argmax(personalizer.predict(user.eval_x), -1) == user.eval_y))

    results = {"reference": (accuracy(), personalizer.sparsity().macs, 0, ())}
    rate, _ = search_sparsity(personalizer, user.adapt_x, rule)
    results["uniform"] = (accuracy(), personalizer.sparsity().macs, None, (rate,))
    personalizer.set_state(base)
    found = search_layerwise(personalizer, user.adapt_x, rule, rates)
    results["layerwise"] = (accuracy(), found.macs, found.passes, found.rates)
    if slim_path:
        personalizer.slim(slim_path)
    personalizer.set_state(base)
    if "layerwise, folded" not in searches:
        return results
    vector = np.zeros(len(base.masks))
    folded = host_scores(model, personalizer.metadata.hidden_groups, user.adapt_x)["folded, before BN"]
    vector[:len(folded)] = folded
    ladder = [host_masks(base, personalizer.metadata, vector, r) for r in rates]
    found = search_layerwise(personalizer, user.adapt_x, rule, rates, ladder=ladder)
    results["layerwise, folded"] = (accuracy(), found.macs, found.passes, found.rates)
    personalizer.set_state(base)
    return results


def summarize_searches(per_user, dense, searches=SEARCHES):
    dense = np.asarray(dense)
    reference = np.array([r["reference"][0] for r in per_user])
    print(f"dense: {dense.mean():.4f} over {len(per_user)} users; reference (step 5 off): {reference.mean():.4f}")
    print(f"{'search':18} {'accuracy':>9} {'vs dense':>8} {'vs ref':>7} {'<dense':>6} {'<ref-1':>6} "
          f"{'MACs mean':>9} {'min':>6} {'median':>6} {'ideal×':>6} {'passes':>6}")
    for search in searches:
        accuracy = np.array([r[search][0] for r in per_user])
        macs = np.array([r[search][1] for r in per_user])
        passes = [r[search][2] for r in per_user]
        passes = f"{np.mean(passes):6.1f}" if None not in passes else f"{'≤14':>6}"
        print(f"{search:18} {accuracy.mean():9.4f} {(accuracy - dense).mean() * 100:+8.2f} "
              f"{(accuracy - reference).mean() * 100:+7.2f} {int(np.sum(accuracy < dense - 1e-9)):6d} "
              f"{int(np.sum(accuracy < reference - 0.01 - 1e-9)):6d} {macs.mean():9.1%} {macs.min():6.1%} "
              f"{np.median(macs):6.1%} {1 / (1 - np.median(macs)):5.1f}× {passes}")


def time_files(users, per_user, jobs, repeats, batch=32, threads=1):
    """Each user's slimmed layerwise file against the dense one under tflite-runtime (auto_slim.py's timer)."""
    import json
    import statistics
    import subprocess

    from auto_slim import TIMER

    runtime = os.environ.get("FINEPRUNE_TFLITE_RUNTIME_PYTHON", ".venv-tflite214/bin/python")
    timed = subprocess.run([runtime, "-c", TIMER, json.dumps(jobs), str(batch), str(threads), str(repeats)],
                           capture_output=True, text=True, check=True)
    times = json.loads(timed.stdout.strip().splitlines()[-1])
    print(f"{'user':<20} {'MACs removed':>12} {'slim MB':>8} {'dense ms':>9} {'slim ms':>8} {'speed-up':>8}")
    for user, result, job, (dense_s, slim_s) in zip(users, per_user, jobs, times):
        print(f"{user.name[:20]:<20} {result['layerwise'][1]:>12.1%} {os.path.getsize(job[1]) / 1e6:>8.2f} "
              f"{dense_s * 1e3:>9.4f} {slim_s * 1e3:>8.4f} {dense_s / slim_s:>7.1f}×")
    speedups = [d / s for d, s in times]
    print(f"{len(jobs)} users, tflite-runtime, {threads} thread(s), batches of {batch}, median of {repeats}: "
          f"speed-up median {statistics.median(speedups):.1f}×, min {min(speedups):.1f}×, max {max(speedups):.1f}×")


def pick(rows, threshold, first_failure_stops):
    """The row a stopping rule picks (see the module docstring)."""
    chosen = rows[0]
    for entry in rows[1:]:
        if entry[2] < threshold:
            if first_failure_stops:
                break
            continue
        chosen = entry
    return chosen


def summarize(per_user, dense):
    dense = np.asarray(dense)
    print(f"dense: {dense.mean():.4f} over {len(per_user)} users; reference (step 5 off): "
          f"{np.mean([rows[SCORES[0]][0][1] for rows in per_user]):.4f}")
    print(f"{'score':18} {'rule':>11} {'accuracy':>9} {'vs dense':>8} {'vs ref':>7} {'<dense':>6} "
          f"{'MACs mean':>9} {'min':>6}")
    for score in SCORES:
        base = np.array([rows[score][0][1] for rows in per_user])
        for name, threshold, first_failure_stops in RULES:
            picked = [pick(rows[score], threshold, first_failure_stops) for rows in per_user]
            accuracy = np.array([p[1] for p in picked])
            macs = np.array([p[3] for p in picked])
            print(f"{score:18} {name:>11} {accuracy.mean():9.4f} {(accuracy - dense).mean() * 100:+8.2f} "
                  f"{(accuracy - base).mean() * 100:+7.2f} {int(np.sum(accuracy < dense - 1e-9)):6d} "
                  f"{macs.mean():9.1%} {macs.min():6.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", choices=["bn", "plain"])
    parser.add_argument("--users-per-count", type=int, default=5, help="users per class count (2, 3, 5)")
    parser.add_argument("--per-class", type=int, default=40, help="adaptation (and evaluation) images a class")
    parser.add_argument("--search", action="store_true", help="compare the searches (module docstring)")
    parser.add_argument("--time", action="store_true",
                        help="with --search: time each user's slimmed layerwise file against the dense one under "
                             "tflite-runtime ($FINEPRUNE_TFLITE_RUNTIME_PYTHON), as benchmarks/auto_slim.py does")
    parser.add_argument("--repeats", type=int, default=10, help="with --time: timed calls per file")
    parser.add_argument("--fine", action="store_true", help="with --search: the layerwise searches climb FINE_STEPS")
    parser.add_argument("--no-folded", action="store_true", help="with --search: leave out 'layerwise, folded'")
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args()
    from tflite_fineprune.converters.evaluation import class_subset_users
    from tflite_fineprune.converters.fashion import load_fashion_mnist
    from tflite_fineprune.converters.fashion_cnn import export_fashion_cnn, trained_fashion_cnn
    from tflite_fineprune import Personalizer

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    batchnorm = args.variant == "bn"
    path = out / f"fashion_cnn_{args.variant}.tflite"
    print(export_fashion_cnn(path, batchnorm, prune_outputs=True)[0])
    model, _ = trained_fashion_cnn(batchnorm)
    x, y = load_fashion_mnist("test")
    users = class_subset_users([x[y == c] for c in range(10)], users_per_count=args.users_per_count,
                               adapt_per_class=args.per_class, eval_per_class=args.per_class)
    personalizer = Personalizer(path)
    per_user, dense, jobs = [], [], []
    searches = SEARCHES[:2] if args.no_folded else SEARCHES
    start = time.perf_counter()
    if args.time:
        personalizer.reset()
        personalizer.slim(out / "dense_slim.tflite")  # what an app without personalization ships
    for index, user in enumerate(users):
        personalizer.reset()
        dense.append(float(np.mean(np.argmax(personalizer.predict(user.eval_x), -1) == user.eval_y)))
        if args.search:
            slim = out / f"layerwise_user{index}.tflite" if args.time else None
            per_user.append(measure_searches(personalizer, model, user, searches, slim_path=slim,
                                             rates=FINE_STEPS if args.fine else SPARSITY_STEPS))
            if slim:
                np.save(out / f"user{index}.npy", np.asarray(user.eval_x, personalizer.metadata.input_dtype))
                jobs.append([str(out / "dense_slim.tflite"), str(slim), str(out / f"user{index}.npy")])
            said = "; ".join(f"{k} {v[0]:.3f} at {v[1]:.1%} ({'/'.join(f'{r:.2f}' for r in v[3])})"
                             for k, v in per_user[-1].items())
            print(f"{user.name}: dense {dense[-1]:.3f}; {said}; {time.perf_counter() - start:.0f} s", flush=True)
            continue
        per_user.append(measure_user(personalizer, model, user))
        print(f"{user.name}: dense {dense[-1]:.3f}, {time.perf_counter() - start:.0f} s", flush=True)
    if args.search:
        summarize_searches(per_user, dense, searches)
        if jobs:
            time_files(users, per_user, jobs, args.repeats)
    else:
        summarize(per_user, dense)


if __name__ == "__main__":
    main()
