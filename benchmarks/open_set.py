"""Users whose data is not the model's world: does `personalize` still never hurt them?

Messy populations (tflite_fineprune/converters/messy_users.py): each user's *adaptation* set
is mixed with out-of-vocabulary samples until they are a given share of it;
evaluation is on the user's real classes only (the clean evaluation half).

- speech (MLPerf DS-CNN, Speech Commands speakers with ≥ 30 clips): other
  speakers' auxiliary words (→ `_unknown_`) at 25 / 50 / 75 %, FSDD digits
  resampled to 16 kHz at 50 %, `_silence_` clips at 50 %;
- cifar (MLPerf ResNet-8, class-subset users): Fashion-MNIST upscaled to
  32×32 RGB at 25 / 50 %, uniform noise at 50 %.

Per mix: dense, auto before the guard (`min_in_domain_share=-1`, the recipe
as it was), auto with the guard (the default); mean, worst decile,
helped/hurt, and the share of the adaptation samples the guard counts as
in-domain (mean over users). "kept" is the guarded auto's gain (auto − dense)
on this mix as a share of the clean population's gain before the guard.

usage: python benchmarks/open_set.py [--kinds speech,cifar] [--users N] [--out DIR] [--typicality-quantile Q]

--typicality-quantile exports with another share of the reference pool below the typicality limit
(export/normalization.py `TYPICALITY_QUANTILE`, default 0.95).
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tflite_fineprune.converters import demo  # noqa: E402
from tflite_fineprune.converters import messy_users as messy  # noqa: E402
from tflite_fineprune.converters.evaluation import Recipe, class_subset_users, evaluate_users, speaker_users  # noqa: E402
from tflite_fineprune import Personalizer, open_set  # noqa: E402
from tflite_fineprune.auto_recipe import AutoRule  # noqa: E402

BEFORE = Recipe("auto before the guard", rule=AutoRule(min_in_domain_share=-1.0))
GUARDED = Recipe("auto with the guard", rule=AutoRule())
CIFAR_REFERENCE_PER_CLASS = 100


def _speech(root, out, users_wanted):
    from tflite_fineprune.converters.frontend import CLIP_SAMPLES, SAMPLE_RATE
    from tflite_fineprune.converters.speech import KWS_LABELS, export_mlperf
    from tflite_fineprune.datafiles import fit_audio, load_audio

    def load_clip(path):
        return fit_audio(path, *load_audio(path), (CLIP_SAMPLES,), SAMPLE_RATE)

    test = root / demo.SPEECH_DATA[0]
    model = out / "kws_ds_cnn_open_set.tflite"
    print(export_mlperf(model, root))
    users = speaker_users(test, list(KWS_LABELS), load_clip)[:users_wanted]
    words = messy.other_speakers(*messy.unknown_words_by_speaker(test, load_clip))
    digits = messy.fsdd_digits(root / "fsdd" / "recordings", load_clip)
    silence = messy.silence_clips(test, load_clip)
    mixes = [("clean", users)] + [(f"{share:.0%} other speakers' unknown words", messy.mix_users(users, words, share))
                                  for share in (0.25, 0.5, 0.75)]
    mixes += [("50% FSDD digits", messy.mix_users(users, digits, 0.5)),
              ("50% silence / background noise", messy.mix_users(users, silence, 0.5))]
    return model, mixes


def _cifar(root, out, users_wanted):
    from tflite_fineprune.converters.fashion import load_fashion_mnist
    from tflite_fineprune.converters.vision import cifar_by_class, export_mlperf

    by_class = cifar_by_class(root)
    reference = np.concatenate([images[:CIFAR_REFERENCE_PER_CLASS] for images in by_class])
    model = out / "resnet8_open_set.tflite"
    print(export_mlperf(model, root, reference_data=reference))
    users = class_subset_users([images[CIFAR_REFERENCE_PER_CLASS:] for images in by_class])[:users_wanted]
    fashion = messy.fashion_as_cifar(load_fashion_mnist("test")[0][:3000])
    noise = messy.noise_images(1000)
    mixes = [("clean", users)] + [(f"{share:.0%} Fashion-MNIST", messy.mix_users(users, fashion, share))
                                  for share in (0.25, 0.5)]
    mixes.append(("50% noise images", messy.mix_users(users, noise, 0.5)))
    return model, mixes


def _in_domain_share(personalizer, users):
    """Mean over users of the share of adaptation samples the guard counts as in-domain (as `personalize` does)."""
    labels, shares = list(personalizer.metadata.labels), []
    for user in users:
        personalizer.reset()
        outputs, typicality = personalizer.observe_typicality(user.adapt_x, progress=False)
        shares.append(open_set.check(outputs.argmax(-1), labels, 0, 0.0, typicality)[0].share)
    personalizer.reset()
    return float(np.mean(shares))


def _summary(rows, recipe):
    """Mean, worst decile (dense and personalized) and helped/hurt of one recipe's rows."""
    part = [r for r in rows if r["recipe"] == recipe]
    dense = np.array([r["dense_accuracy"] for r in part])
    acc = np.array([r["accuracy"] for r in part])
    worst = max(1, int(round(0.1 * len(part))))
    return {"users": len(part), "dense_mean": dense.mean(), "mean": acc.mean(),
            "dense_worst_decile": np.sort(dense)[:worst].mean(), "worst_decile": np.sort(acc)[:worst].mean(),
            "helped": int(np.sum(acc > dense)), "hurt": int(np.sum(acc < dense))}


def _table(rows_by_mix, shares):
    header = ("| mix | users | in-domain | dense mean | before: mean | worst 10 % (dense → before) | +/− | "
              "guard: mean | worst 10 % (dense → guard) | +/− | kept |")
    lines = [header, "|" + "---|" * 11]
    clean_gain = None
    for mix, rows in rows_by_mix.items():
        before, guard = _summary(rows, BEFORE.name), _summary(rows, GUARDED.name)
        gain = guard["mean"] - guard["dense_mean"]
        if clean_gain is None:  # the first mix is the clean population; its gain before the guard is the yardstick
            clean_gain = before["mean"] - before["dense_mean"]
        kept = f"{gain / clean_gain:.0%}" if clean_gain and clean_gain > 0 else "–"
        lines.append(
            f"| {mix} | {guard['users']} | {shares[mix]:.0%} | {guard['dense_mean']:.3f} | {before['mean']:.3f} | "
            f"{before['dense_worst_decile']:.3f} → {before['worst_decile']:.3f} | "
            f"{before['helped']}/{before['hurt']} | "
            f"{guard['mean']:.3f} | {guard['dense_worst_decile']:.3f} → {guard['worst_decile']:.3f} | "
            f"{guard['helped']}/{guard['hurt']} | {kept} |")
    return "\n".join(lines)


KINDS = {"speech": _speech, "cifar": _cifar}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="speech,cifar")
    parser.add_argument("--data")
    parser.add_argument("--users", type=int, default=10 ** 6, help="evaluate only the first N users (development)")
    parser.add_argument("--out", default="benchmarks/out")
    parser.add_argument("--typicality-quantile", type=float, help="export with this TYPICALITY_QUANTILE")
    args = parser.parse_args()
    if args.typicality_quantile is not None:
        from tflite_fineprune.export import normalization

        normalization.TYPICALITY_QUANTILE = args.typicality_quantile
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds.split(","):
        start = time.perf_counter()
        root = demo.find_data(args.data, kind == "cifar")
        model, mixes = KINDS[kind](root, out, args.users)
        personalizer = Personalizer(model)
        rows_by_mix, shares = {}, {}
        for mix, users in mixes:
            shares[mix] = _in_domain_share(personalizer, users)
            rows_by_mix[mix] = evaluate_users(personalizer, users, [BEFORE, GUARDED], others_per_user=0,
                                              progress=False)
            print(f"  {kind} / {mix}: {time.perf_counter() - start:.0f} s", flush=True)
        print(f"\n=== {kind}: auto = {AutoRule()}")
        print(_table(rows_by_mix, shares))
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
