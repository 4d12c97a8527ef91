"""`tflite-fineprune android-assets`: everything the Android demo app bundles, generated from real models and data.

    tflite-fineprune android-assets [-o DIR] [--speech MODEL.tflite] [--vision MODEL.tflite] [--data DATA]
                                    [--record FOLDER]

Writes into DIR (default `android_demo/app/src/main/assets`):

- `models/speech.tflite`, `models/vision.tflite`: the given models, or the defaults exported here (MLPerf Tiny
  DS-CNN with its MFCC front-end, MLPerf Tiny ResNet-8 behind a uint8 front-end, both with class pruning);
- `users/<user>/adapt/*`, `users/<user>/eval/*`: one user per model, picked from the users of
  `tflite-fineprune demo` (speech: every Speech Commands test speaker with ≥ 30 clips; vision: users who
  meet 2, 3 or 5 CIFAR-10 classes) by `REPRESENTATIVE_RULE`: the demo's per-user evaluation
  (`evaluation.evaluate_users`, automatic recipe) runs here over all of them, and the user whose gain is
  closest to the mean gain is bundled — the phone then shows what the README's tables report. WAV clips
  are copied as is; images are re-encoded losslessly as PNG so the phone decodes exactly the pixels
  Python saw;
- `manifest.json`: per model its file, signatures (input/output names, dtypes, shapes), labels, sample
  rate or image size, the recipe and its tflite-fineprune metadata; per user the files, the dense and
  personalized accuracy this run measured through the app's call sequence — what the phone must
  reproduce — and `chosen_by`: the rule, the per-user table it was applied to and the means.

`--record FOLDER` also writes, per user, a recording of every signature call of the app's session
(`tflite_fineprune.converters.android_session`) for the JVM replay test.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from . import demo
from .android_session import AUTO, AppSession, Recorder, auto_recipe, auto_rule, check_recipe
from .. import demo_data
from .. import signatures as sig
from ..datafiles import fit_audio, load_audio
from ..errors import FinePruneError, InputError, ModelError
from .evaluation import Recipe, evaluate_users
from ..interpreters import open_interpreter
from ..metadata import read_model_file
from ..safe_io import atomic_write

MANIFEST_FORMAT = "tflite-fineprune-android-assets"
MANIFEST_VERSION = 1
DEFAULT_OUTPUT = os.path.join("android_demo", "app", "src", "main", "assets")
SPEECH_DATA = "speech_commands_v0.02_test"
VISION_DATA = "cifar10_test"
REPRESENTATIVE_RULE = ("of the demo's users of this kind, the one whose gain (personalized minus dense accuracy "
                       "on its held-out half, automatic recipe) is closest to the mean gain; ties: first by name")

# Both users run what `Personalizer.personalize` runs (tflite_fineprune/auto_recipe.py, default `AutoRule`): the app
# decides from the model's own counters which classes to exclude, which units to prune and whether to shift
# the BatchNorm statistics. (The app still reads fixed `steps` recipes too.)
RECIPES = {"speech": auto_recipe(), "vision": auto_recipe()}
NAMES = {"speech": "MLPerf Tiny DS-CNN keyword spotting (12 words, MFCC in the graph)",
         "vision": "MLPerf Tiny ResNet-8 CIFAR-10 (uint8 pixels in)"}
APP_SIGNATURES = (sig.INFER, sig.COLLECT, sig.RESET, sig.GET_STATE, sig.SET_STATE)


def _writable_folder(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".fineprune-probe-"):
            pass
    except OSError as exc:
        raise FinePruneError(f"cannot write the asset folder {os.fspath(path)!r}: {exc.strerror or exc}") from None


def _check_data(root, kinds):
    if not root.is_dir():
        raise InputError(f"data folder {os.fspath(root)!r} does not exist; pass --data or set FINEPRUNE_DATA")
    needed = {"speech": SPEECH_DATA, "vision": VISION_DATA}
    missing = [needed[k] for k in kinds if not (root / needed[k]).is_dir()]
    if missing:
        raise InputError(f"data folder {os.fspath(root)!r} lacks {', '.join(missing)} (the bundled users come from "
                         "the Speech Commands v0.02 test split and the CIFAR-10 test images); get them with: "
                         "tflite-fineprune data fetch --only speech_commands --only cifar10")


def _signature_specs(interpreter):
    specs = {}
    for key in sorted(interpreter.get_signature_list()):
        runner = interpreter.get_signature_runner(key)

        def describe(details):
            return [{"name": name, "dtype": np.dtype(d["dtype"]).name, "shape": [int(v) for v in d["shape"]]}
                    for name, d in sorted(details.items())]

        specs[key] = {"inputs": describe(runner.get_input_details()), "outputs": describe(runner.get_output_details())}
    return specs


def describe_model(kind, path):
    """The manifest entry of a model file, after checking it has what the app needs."""
    path = os.fspath(path)
    content, meta = read_model_file(path)
    interpreter, _ = open_interpreter(path, "litert", content=content)
    specs = _signature_specs(interpreter)
    recipe = RECIPES[kind]
    # The automatic recipe uses whichever of its signatures the model has, like `Personalizer.personalize`.
    needed = list(APP_SIGNATURES) + ([] if recipe.get("kind") == AUTO else [s["signature"] for s in recipe["steps"]])
    missing = [name for name in needed if name not in specs]
    if missing:
        hint = " (export it with prune_outputs / --prune-outputs)" if sig.PRUNE_OUTPUTS in missing else ""
        raise ModelError(f"{path} lacks the signatures {', '.join(missing)} "
                         f"that the app's {kind} session calls{hint}")
    x = specs[sig.INFER]["inputs"]
    if len(x) != 1 or x[0]["shape"][0] != 1:
        raise ModelError(f"{path}: infer must take one input of shape [1, ...]; it takes {x}")
    if kind == "speech" and (x[0]["dtype"] != "float32" or len(x[0]["shape"]) != 2 or not meta.sample_rate):
        raise ModelError(f"{path} is not an audio model: expected float32 PCM [1, samples] and a sample rate, "
                         f"got {x[0]['dtype']} {x[0]['shape']}, sample rate {meta.sample_rate}")
    if kind == "vision" and (x[0]["dtype"] != "uint8" or len(x[0]["shape"]) != 4 or x[0]["shape"][3] != 3):
        raise ModelError(f"{path} is not a uint8 image model: expected uint8 [1, H, W, 3], "
                         f"got {x[0]['dtype']} {x[0]['shape']}")
    entry = {
        "key": kind, "kind": kind, "name": NAMES[kind], "file": f"models/{kind}.tflite",
        "file_bytes": os.path.getsize(path), "fingerprint": meta.fingerprint,
        "model_format_version": meta.format_version, "labels": list(meta.labels), "num_units": meta.num_units,
        "sample_rate": meta.sample_rate if kind == "speech" else None,
        "image_size": x[0]["shape"][1:3] if kind == "vision" else None,
        "batch_size": 1, "signatures": specs, "recipe": recipe,
        "metadata": json.loads(meta.to_json()),
    }
    check_recipe(entry)
    return entry, meta, interpreter


def representative_user(rows):
    """The row whose gain is closest to the mean gain of all `rows` (one recipe's); see `REPRESENTATIVE_RULE`.

    The mean is what the demo's summary (and the README's tables) report; the median is no better a
    representative here: the median speaker's accuracy does not move (clips move a speaker's accuracy in steps of
    3-5 points, and most speakers stay put). Gains are compared rounded to 1e-9 so that equal fractions tie.
    """
    if not rows or len({r["recipe"] for r in rows}) != 1:
        raise FinePruneError(f"expected the rows of one recipe, got {len(rows)} rows of "
                             f"{sorted({r['recipe'] for r in rows})}")
    gains = [r["accuracy"] - r["dense_accuracy"] for r in rows]
    mean = float(np.mean(gains))
    return min(zip(rows, gains), key=lambda pair: (round(abs(pair[1] - mean), 9), pair[0]["user"]))[0]


def _demo_users(kind, root, labels):
    """The demo's users of `kind` as `evaluation.User`s whose samples are file paths (same users, same splits)."""
    if kind == "speech":
        return demo.speech_users(root, labels, str)
    from .vision import REFERENCE_PER_CLASS

    files = []
    for name in labels:
        found = sorted((root / VISION_DATA / name).glob("*.jpg"))
        if len(found) <= REFERENCE_PER_CLASS:
            raise InputError(f"{root / VISION_DATA / name} has {len(found)} images; the vision demo's users need "
                             f"more than the {REFERENCE_PER_CLASS} of the BatchNorm reference pool")
        files.append(np.array([os.fspath(f) for f in found]))
    return demo.vision_users(files)


def _choose_user(kind, source, entry, root, labels):
    """Run the demo's per-user evaluation over every user of `kind`; the representative user and its table."""
    from ..runtime import Personalizer

    users = _demo_users(kind, root, labels)

    def load(paths):
        return np.stack([_load_sample(kind, p, entry) for p in paths])

    loaded = [dataclasses.replace(u, adapt_x=load(u.adapt_x), eval_x=load(u.eval_x)) for u in users]
    rows = evaluate_users(Personalizer(source), loaded, [Recipe("auto", rule=auto_rule(entry["recipe"]))],
                          others_per_user=0, progress=False)
    row = representative_user(rows)
    user = next(u for u in users if u.name == row["user"])
    table = [{k: r[k] for k in ("user", "adapt", "eval", "dense_accuracy", "accuracy")} for r in rows]
    chosen_by = {"rule": REPRESENTATIVE_RULE, "demo_user": row["user"], "users": len(rows),
                 "mean_dense_accuracy": float(np.mean([r["dense_accuracy"] for r in rows])),
                 "mean_accuracy": float(np.mean([r["accuracy"] for r in rows])),
                 "mean_gain": float(np.mean([r["accuracy"] - r["dense_accuracy"] for r in rows])),
                 "evaluation": table}
    adapt = [(p, None) for p in user.adapt_x]
    held_out = list(zip(user.eval_x, (int(y) for y in user.eval_y)))
    if kind == "speech":
        key = f"speaker-{user.name}"
        description = f"Speech Commands speaker {user.name}, {len(adapt) + len(held_out)} clips"
    else:
        classes = [labels[c] for c in sorted({int(y) for y in user.eval_y})]
        key = "cifar-" + "+".join(classes)
        description = f"CIFAR-10 user who only meets {', '.join(classes)} (the vision demo's user {user.name})"
    description += (f": of the demo's {len(rows)} users, gain closest to the mean "
                    f"({chosen_by['mean_dense_accuracy']:.3f} → {chosen_by['mean_accuracy']:.3f})")
    return key, description, adapt, held_out, row, chosen_by


def _copy_speech(src, dst):
    shutil.copyfile(src, dst)
    return dst


def _copy_image(src, dst):
    from PIL import Image

    with Image.open(src) as image:
        image.convert("RGB").save(dst, format="PNG")
    return dst


def _load_sample(kind, path, entry):
    if kind == "speech":
        audio, rate = load_audio(path)
        return fit_audio(path, audio, rate, tuple(entry["signatures"][sig.INFER]["inputs"][0]["shape"][1:]),
                         entry["sample_rate"])
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.uint8)


def _export_default(kind, folder, data_root):
    path = os.path.join(folder, f"{kind}.tflite")
    if kind == "speech":
        from .speech import export_mlperf
    else:
        from .vision import export_mlperf
    report = export_mlperf(path, data_root, prune_outputs=True)
    # The scratch path is gone once the assets are written: name the asset the model becomes instead.
    check = "" if report.max_abs_error is None else f", max |TFLite - Keras| {report.max_abs_error:.1e}"
    print(f"{kind}: exported the {NAMES[kind]} as models/{kind}.tflite: {report.groups} unit groups, "
          f"{report.units} prunable units, {report.file_bytes / 1e6:.2f} MB, {report.seconds:.0f} s{check}",
          flush=True)
    return path


def build_assets(output=DEFAULT_OUTPUT, speech=None, vision=None, data=None, record=None):
    """Generate the app's assets (see module docstring); returns the manifest dict."""
    root = demo_data.data_root(data, [SPEECH_DATA, VISION_DATA])
    kinds = ("speech", "vision")
    _check_data(root, kinds)
    for kind, given in (("speech", speech), ("vision", vision)):
        if given is not None and not os.path.isfile(given):
            raise ModelError(f"--{kind} model {os.fspath(given)!r} does not exist")
    output = pathlib.Path(output)
    _writable_folder(output)
    models, users = [], []
    with tempfile.TemporaryDirectory(prefix="fineprune-assets-") as scratch:
        # Every model is checked before anything is written.
        described = [(kind, given or _export_default(kind, scratch, root)) for kind, given in
                     (("speech", speech), ("vision", vision))]
        described = [(kind, source) + describe_model(kind, source) for kind, source in described]
        for kind, source, entry, meta, interpreter in described:
            (output / "models").mkdir(exist_ok=True)
            shutil.copyfile(source, output / entry["file"])
            key, description, adapt, held_out, row, chosen_by = _choose_user(kind, source, entry, root,
                                                                              list(meta.labels))
            folder = output / "users" / key
            if folder.exists():
                shutil.rmtree(folder)
            copy, suffix = (_copy_speech, ".wav") if kind == "speech" else (_copy_image, ".png")
            adapt_files, eval_files = [], []
            for part, items, listing in (("adapt", adapt, adapt_files), ("eval", held_out, eval_files)):
                (folder / part).mkdir(parents=True)
                for i, (path, label) in enumerate(items):
                    relative = f"users/{key}/{part}/{i:03d}{suffix}"
                    copy(path, output / relative)
                    # Adaptation files carry no label: the app never sees one for them.
                    listing.append(relative if part == "adapt" else {"file": relative, "label": int(label)})
            recorder = Recorder(interpreter)
            session = AppSession(entry, recorder)
            expected = session.personalize([_load_sample(kind, output / f, entry) for f in adapt_files],
                                           [_load_sample(kind, output / e["file"], entry) for e in eval_files],
                                           [e["label"] for e in eval_files], meta)
            if (expected["dense_accuracy"], expected["accuracy"]) != (row["dense_accuracy"], row["accuracy"]):
                raise FinePruneError(
                    f"{key}: the app's call sequence measured {expected['dense_accuracy']:.4f} → "
                    f"{expected['accuracy']:.4f}, the per-user evaluation {row['dense_accuracy']:.4f} → "
                    f"{row['accuracy']:.4f}; the manifest would promise numbers the demo does not report")
            if record:
                recorder.write(record, key, {**expected, "model": kind, "user": key})
            models.append(entry)
            users.append({"name": key, "model": kind, "description": description, "adapt": adapt_files,
                          "eval": eval_files, "expected": expected, "chosen_by": chosen_by})
            print(f"{kind}: {key}: {len(adapt_files)} adaptation + {len(eval_files)} evaluation files; "
                  f"dense accuracy {expected['dense_accuracy']:.3f} → {expected['accuracy']:.3f} after "
                  f"'{entry['recipe']['name']}' ({expected['pruned_units']}/{expected['total_units']} units pruned, "
                  f"classes excluded: {', '.join(expected['excluded_classes']) or 'none'})")
    manifest = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "models": models, "users": users}
    atomic_write(output / "manifest.json", json.dumps(manifest, indent=1).encode("utf-8"))
    print(f"wrote {output / 'manifest.json'}")
    return manifest
