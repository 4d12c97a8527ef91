"""The numbers the Android demo must reproduce: generate its assets and print each bundled user's result.

usage: python benchmarks/android_assets.py [-o DIR] [--data DATA]

Runs `tflite-fineprune android-assets` (default models exported here, into a temporary folder unless
-o is given), then prints how each bundled user was chosen (the demo's per-user table it ran, its mean, the
user whose gain is closest to the mean gain), and per bundled user the dense and personalized accuracy on the
held-out half, units / weights / MACs removed and classes excluded, as the manifest records them.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tflite_fineprune.converters.android_assets import build_assets  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", help="asset folder to keep (default: a temporary folder)")
    parser.add_argument("--data", help="demo data folder (default: $FINEPRUNE_DATA)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        folder = pathlib.Path(args.output or os.path.join(scratch, "assets"))
        manifest = build_assets(folder, data=args.data)
        seconds = time.perf_counter() - start
        sizes = {part: sum(f.stat().st_size for f in (folder / part).rglob("*") if f.is_file())
                 for part in ["models"] + [f"users/{u['name']}" for u in manifest["users"]]}
        print(f"\ngenerated in {seconds:.0f} s; " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items())
              + f", manifest.json {(folder / 'manifest.json').stat().st_size / 1e6:.2f} MB\n")
    for user in manifest["users"]:
        c = user["chosen_by"]
        gains = sorted(r["accuracy"] - r["dense_accuracy"] for r in c["evaluation"])
        print(f"{user['model']}: {c['users']} demo users, "
              f"mean {c['mean_dense_accuracy']:.3f} → {c['mean_accuracy']:.3f} "
              f"(gain {c['mean_gain']:+.3f}; median {np.median(gains):+.3f}, helped/hurt "
              f"{sum(g > 0 for g in gains)}/{sum(g < 0 for g in gains)}); bundled: {c['demo_user']}, "
              f"gain {user['expected']['accuracy'] - user['expected']['dense_accuracy']:+.3f}")
    print(f"rule: {manifest['users'][0]['chosen_by']['rule']}\n")
    print(f"{'user':<28} {'model':<7} {'adapt':>5} {'eval':>5} {'dense':>6} {'after':>6} {'units':>9} "
          f"{'weights':>8} {'MACs':>6}  classes excluded")
    for user in manifest["users"]:
        e = user["expected"]
        print(f"{user['name']:<28} {user['model']:<7} {len(user['adapt']):>5} {len(user['eval']):>5} "
              f"{e['dense_accuracy']:>6.3f} {e['accuracy']:>6.3f} {e['pruned_units']:>4}/{e['total_units']:<4} "
              f"{e['weight_sparsity']:>8.1%} {e['mac_sparsity']:>6.1%}  {', '.join(e['excluded_classes']) or 'none'}")
        if "chosen" in e:
            print(f"{'':<28} recipe chosen: {e['chosen']}; class test: {e['class_test']}")


if __name__ == "__main__":
    main()
