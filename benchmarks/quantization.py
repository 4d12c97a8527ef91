"""int8 exports of the MLPerf Tiny DS-CNN (MFCC front-end inside) on the Speech Commands v0.02 test split.

Exports the float model and the int8 one (`quantize="int8"`: int8 weights,
float activations), then on all 4,890 clips through LiteRT on raw PCM:
accuracy, agreement with the float export, file size. The on-device routine
on the int8 file: activity counted by `collect` on 300 clips vs the float
file's, the units a 5 % prune removes, a state round trip, and the float
file's state refused. `--demo` adds the per-user speaker table
(tflite_fineprune/converters/demo.py's users and recipes) on both files.

usage: python benchmarks/quantization.py [--data DIR] [--demo]
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tflite_fineprune.converters.speech import export_mlperf  # noqa: E402
from tests.realdata import read_clip  # noqa: E402
from tflite_fineprune import Personalizer  # noqa: E402
from tflite_fineprune.errors import FinePruneError  # noqa: E402
from tflite_fineprune.demo_data import data_root  # noqa: E402


def routine_check(float_model, quantized, clips, workdir):
    """How the int8 file's collect/prune/state compare with the float file's."""
    activity = []
    masks = []
    for personalizer in (float_model, quantized):
        personalizer.reset()
        personalizer.observe(clips, batch_size=50)
        activity.append(np.concatenate([personalizer.activity[g.name] for g in personalizer.groups]))
        personalizer.prune(0.05)
        masks.append(personalizer.get_state().masks)
    a, b = activity
    pruned = [set(np.flatnonzero(m < 0.5)) for m in masks]
    same = len(pruned[0] & pruned[1]) / max(1, len(pruned[0] | pruned[1]))
    state = os.path.join(workdir, "q.state")
    quantized.save_state(state)
    before = quantized.get_state().masks.copy()
    quantized.reset()
    quantized.load_state(state)
    round_trip = np.array_equal(before, quantized.get_state().masks)
    float_state = os.path.join(workdir, "f.state")
    float_model.save_state(float_state)
    try:
        quantized.load_state(float_state)
        refused = "NOT refused"
    except FinePruneError as exc:
        refused = f"refused ({str(exc)[:60]}…)"
    return (f"activity vs float: max |diff| {np.abs(a - b).max():.3f}, correlation {np.corrcoef(a, b)[0, 1]:.4f}; "
            f"5% prune: {len(pruned[1])} units, {same:.0%} the same as the float file's (Jaccard); "
            f"state round trip {'ok' if round_trip else 'FAILED'}; float state {refused}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--demo", action="store_true", help="also the per-user speaker tables")
    args = parser.parse_args()
    root = data_root(args.data)
    files = sorted((root / "speech_commands_v0.02_test").glob("*/*.wav"))
    pcm = np.stack([read_clip(p) for p in files])
    words = np.array([p.parent.name for p in files])
    rng = np.random.default_rng(0)
    observed = pcm[rng.choice(len(pcm), 300, replace=False)]
    with tempfile.TemporaryDirectory() as workdir:
        variants = {"float32": {}, "int8": {"quantize": "int8"}}
        results = {}
        for name, options in variants.items():
            path = os.path.join(workdir, name.replace(" ", "_") + ".tflite")
            start = time.perf_counter()
            try:
                export_mlperf(path, root, prune_outputs=True, **options)
            except FinePruneError as exc:
                print(f"{name}: {exc}")
                continue
            export_seconds = time.perf_counter() - start
            personalizer = Personalizer(path)
            start = time.perf_counter()
            probabilities = personalizer.predict(pcm, batch_size=64)
            seconds = time.perf_counter() - start
            results[name] = (path, personalizer, probabilities, seconds, export_seconds)
        labels = np.array(results["float32"][1].labels)
        float_path, float_model, float_probabilities, _, _ = results["float32"]
        float_bytes = os.path.getsize(float_path)
        print(f"{len(files)} clips of the Speech Commands v0.02 test split, raw PCM through LiteRT")
        print(f"{'model':<20} {'accuracy':>8} {'vs float':>9} {'agree':>7} {'MB':>6} {'size':>6} {'ms/clip':>7} "
              f"{'export s':>8}")
        for name, (path, personalizer, probabilities, seconds, export_seconds) in results.items():
            accuracy = np.mean(labels[probabilities.argmax(1)] == words)
            float_accuracy = np.mean(labels[float_probabilities.argmax(1)] == words)
            agree = np.mean(probabilities.argmax(1) == float_probabilities.argmax(1))
            size = os.path.getsize(path)
            print(f"{name:<20} {accuracy:>8.4f} {100 * (accuracy - float_accuracy):>+8.2f}p {agree:>7.2%} "
                  f"{size / 1e6:>6.3f} {size / float_bytes:>5.3f}x {1e3 * seconds / len(files):>7.2f} "
                  f"{export_seconds:>8.1f}")
        for name in results:
            if name != "float32":
                print(f"{name}: {routine_check(float_model, results[name][1], observed, workdir)}")
        if args.demo:
            demo_tables(root, {name: results[name][0] for name in results})


def demo_tables(root, paths):
    from tflite_fineprune.converters.demo import SPEECH_RECIPES, per_user_table
    from tflite_fineprune.converters.frontend import CLIP_SAMPLES, SAMPLE_RATE
    from tflite_fineprune.converters.kws_model import KWS_LABELS
    from tflite_fineprune.datafiles import fit_audio, load_audio
    from tflite_fineprune.converters.evaluation import evaluate_users, format_summary, speaker_users, summarize

    users = speaker_users(root / "speech_commands_v0.02_test", list(KWS_LABELS),
                          lambda p: fit_audio(p, *load_audio(p), (CLIP_SAMPLES,), SAMPLE_RATE))
    for name, path in paths.items():
        rows = evaluate_users(Personalizer(path), users, SPEECH_RECIPES, progress=False)
        print(f"\nper-user speaker table, {name} ({len(users)} users)")
        print(per_user_table(rows, SPEECH_RECIPES))
        print(format_summary(summarize(rows)))


if __name__ == "__main__":
    main()
