"""The cells of phone_assets.ipynb (notebooks/build.py writes the notebook)."""

from cells import PARAMS_HEAD, SETUP, code, md  # noqa: F401

# ---------------------------------------------------------------------------------------------------------------------
PHONE_ASSETS = [
    md(r'''
# The phone's assets: build them, inspect the manifest, replay the app's session in Python

**What this shows.** `tflite-fineprune android-assets` ([docs/android.md](../docs/android.md)) writes what the
Android demo app bundles: the exported models (MLPerf Tiny DS-CNN keyword spotting with its MFCC front-end,
MLPerf Tiny ResNet-8 behind a uint8 front-end), one bundled user per model and `manifest.json` (signatures,
recipe, expected numbers). The bundled users are picked by a stated rule from the users of `tflite-fineprune demo`
(Speech Commands speakers; CIFAR-10 users who meet 2, 3 or 5 classes): the demo's per-user evaluation runs over
all of them and the user whose gain is closest to the mean gain is bundled. We read the manifest, then run the app's
exact call sequence (`tflite_fineprune.converters.android_session.AppSession`: one sample per
signature call, as the Kotlin `PersonalizationSession` issues them) through LiteRT, and show the numbers the
phone must reproduce.

Needs the demo data folder (`$FINEPRUNE_DATA`, else `../shared/data`; in Colab upload or mount it and set
`DATA` below; `tflite_fineprune/demo_data.py` lists what it must hold).
'''),
    code(PARAMS_HEAD + r'''
DATA = None                         # demo data folder; None: $FINEPRUNE_DATA, else ../shared/data
OUTPUT = "fineprune-android-assets" # copy this folder to android_demo/app/src/main/assets/
RECORD = None                       # a folder for recordings of every signature call (the JVM replay tests)
'''),
    code(SETUP),
    md("## Build the assets"),
    code(r'''
import json
from tflite_fineprune.converters.android_assets import build_assets
from tflite_fineprune.demo_data import data_root

print("demo data:", data_root(DATA))
start = time.time()
manifest = build_assets(OUTPUT, data=DATA, record=RECORD)
print(f"({time.time() - start:.0f} s)")
'''),
    md("## Inspect the manifest"),
    code(r'''
for path in sorted(pathlib.Path(OUTPUT).rglob("*")):
    if path.is_file() and path.parent.name in ("models", OUTPUT):
        print(f"{path.relative_to(OUTPUT)}: {path.stat().st_size:,} bytes")
print(f"{sum(f.stat().st_size for f in pathlib.Path(OUTPUT).rglob('*') if f.is_file()):,} bytes in all\n")
for m in manifest["models"]:
    print(f"{m['key']}: {m['name']} — {m['file']}, {m['num_units']} prunable units, labels {m['labels']}")
    print(f"  signatures: {', '.join(m['signatures'])}")
    print(f"  infer input: {m['signatures']['infer']['inputs']}")
    print(f"  recipe: {m['recipe']['name']}: {json.dumps({k: v for k, v in m['recipe'].items() if k != 'name'})}")
for u in manifest["users"]:
    print(f"user {u['name']} ({u['model']}): {u['description']}; {len(u['adapt'])} adaptation files (no labels), "
          f"{len(u['eval'])} evaluation files")
    c = u["chosen_by"]
    print(f"  chosen by: {c['rule']}: {c['demo_user']} of {c['users']} (mean gain {c['mean_gain']:+.3f})")
'''),
    md("## Replay the app's session in Python: the numbers the phone must show"),
    code(r'''
import numpy as np
from PIL import Image
from tflite_fineprune.converters.android_session import AppSession, Recorder
from tflite_fineprune.datafiles import fit_audio, load_audio
from tflite_fineprune.interpreters import open_interpreter
from tflite_fineprune.metadata import read_model_metadata
from tflite_fineprune.safe_io import read_file


def sample(model, relative):
    path = os.path.join(OUTPUT, relative)
    if model["kind"] == "speech":
        audio, rate = load_audio(path)
        return fit_audio(path, audio, rate, tuple(model["signatures"]["infer"]["inputs"][0]["shape"][1:]),
                         model["sample_rate"])
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.uint8)


models = {m["key"]: m for m in manifest["models"]}
rows = []
for u in manifest["users"]:
    model = models[u["model"]]
    path = os.path.join(OUTPUT, model["file"])
    meta = read_model_metadata(read_file(path, "model"), source=path)
    interpreter, _ = open_interpreter(path, "litert")
    recorder = Recorder(interpreter)  # counts the calls the phone will make
    session = AppSession(model, recorder)
    start = time.time()
    got = session.personalize([sample(model, f) for f in u["adapt"]], [sample(model, e["file"]) for e in u["eval"]],
                              [e["label"] for e in u["eval"]], meta)
    seconds = time.time() - start
    want = u["expected"]
    same = all(np.isclose(got[k], want[k]) if isinstance(want[k], float) else got[k] == want[k] for k in want)
    rows.append((u["name"], model["recipe"]["name"], want, got, len(recorder.calls), seconds, same))

print(f"{'user':24} {'dense → after (manifest)':26} {'replayed here':16} {'units':>9} {'weights':>8} {'MACs':>6} "
      f"{'calls':>6}  classes excluded")
for name, recipe, want, got, calls, seconds, same in rows:
    print(f"{name:24} {want['dense_accuracy']:.3f} → {want['accuracy']:.3f}{'':14} "
          f"{got['dense_accuracy']:.3f} → {got['accuracy']:.3f}  {got['pruned_units']:>4}/{got['total_units']:<4} "
          f"{got['weight_sparsity']:>7.1%} {got['mac_sparsity']:>6.1%} {calls:>6}  "
          f"{', '.join(got['excluded_classes']) or 'none'}{'' if same else '  ← DIFFERS from the manifest'}")
assert all(r[-1] for r in rows), "the replay must reproduce the manifest's numbers"
print("\nThe phone shows the same numbers (its LiteRT build may move an argmax on a borderline sample).")
'''),
]
