"""The Android app's personalization session, call for call, through LiteRT — recorded.

`AppSession` issues exactly the signature calls that the app's `PersonalizationSession`
(android_demo/core/.../PersonalizationSession.kt) issues for the Personalize button: one sample per
call, every input typed and shaped as the model's signature declares it. The automatic recipe is
`tflite_fineprune.auto_recipe.personalize` itself, run on `AppPersonalizer` (the few `Personalizer`
methods it uses, each one signature call); the app's `AutoRecipe.kt` is its port. A `Recorder` keeps every
call's inputs and outputs; the JVM replay test feeds the recorded outputs back to the Kotlin session
and requires byte-identical inputs in the same order, so it stands in for the interpreter there.

Recording format: `<name>.json` (calls, each input/output as dtype, shape and a byte range) beside
`<name>.bin` (the raw little-endian bytes).
"""

import dataclasses
import json
import os

import numpy as np

from .. import levers
from .. import auto_recipe as auto
from .. import signatures as sig
from ..errors import FinePruneError
from ..sparsity import measure_sparsity
from ..state import State
from ..safe_io import atomic_write

AUTO = "auto"

RECORDING_VERSION = 1


class Recorder:
    """Wraps signature runners; every call is appended to `calls` with its inputs and outputs."""

    def __init__(self, interpreter):
        self._interpreter = interpreter
        self._runners = {}
        self.calls = []
        self._blob = bytearray()

    def _tensor(self, array):
        array = np.asarray(array)  # (not ascontiguousarray: it turns scalars into shape [1])
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        entry = {"dtype": array.dtype.name, "shape": list(array.shape), "offset": len(self._blob), "length": len(raw)}
        self._blob += raw
        return entry

    def __call__(self, signature, inputs):
        if signature not in self._runners:
            self._runners[signature] = self._interpreter.get_signature_runner(signature)
        outputs = self._runners[signature](**inputs)
        self.calls.append({"signature": signature,
                           "inputs": {k: self._tensor(v) for k, v in inputs.items()},
                           "outputs": {k: self._tensor(v) for k, v in outputs.items()}})
        return outputs

    def write(self, folder, name, results):
        os.makedirs(folder, exist_ok=True)
        index = {"recording_version": RECORDING_VERSION, "binary": f"{name}.bin", "results": results,
                 "calls": self.calls}
        atomic_write(os.path.join(folder, f"{name}.bin"), bytes(self._blob))
        atomic_write(os.path.join(folder, f"{name}.json"), json.dumps(index, indent=1).encode("utf-8"))


class AppSession:
    """The app's call sequence. `model` is a manifest model entry (signature descriptions, recipe)."""

    def __init__(self, model, call):
        self.model = model
        self.call = call

    def _scalars(self, signature, arguments):
        inputs = {}
        for spec in self.model["signatures"][signature]["inputs"]:
            value = np.array(arguments[spec["name"]], dtype=spec["dtype"]).reshape(spec["shape"])
            inputs[spec["name"]] = value
        return self.call(signature, inputs)

    def _forward(self, signature, sample):
        spec = self.model["signatures"][signature]["inputs"][0]
        x = np.asarray(sample, dtype=spec["dtype"]).reshape(spec["shape"])
        return self.call(signature, {spec["name"]: x})[sig.OUTPUT]

    def reset(self):
        self._scalars(sig.RESET, {sig.CLEAR_COUNTS: 1, sig.CLEAR_MASKS: 1})

    def accuracy(self, samples, labels):
        predicted = [int(np.argmax(self._forward(sig.INFER, s).reshape(-1))) for s in samples]
        return float(np.mean(np.array(predicted) == np.asarray(labels)))

    def observe(self, samples):
        """`collect`, one sample per call, as the app's `observe`: the outputs (one row per sample) and the
        typicality (one per sample; None when the model has no such output)."""
        spec = self.model["signatures"][sig.COLLECT]["inputs"][0]
        results = [self.call(sig.COLLECT, {spec["name"]: np.asarray(s, dtype=spec["dtype"]).reshape(spec["shape"])})
                   for s in samples]
        typicality = [r.get(sig.TYPICALITY) for r in results]
        return (np.stack([np.reshape(r[sig.OUTPUT], -1) for r in results]),
                None if any(t is None for t in typicality) else np.concatenate([np.ravel(t) for t in typicality]))

    def apply_recipe(self):
        for step in self.model["recipe"]["steps"]:
            self._scalars(step["signature"], step["inputs"])

    def get_state(self):
        """The state as the app's `getState` holds it: the core vectors and every lever block the model returns."""
        out = self._scalars(sig.GET_STATE, {sig.TOKEN: 0})
        blocks = {field: np.asarray(out[field], np.float32) for _, fields in self._state_blocks() for field in fields
                  if field in out}
        return State(masks=np.asarray(out[sig.MASKS], np.float32), counts=np.asarray(out[sig.COUNTS], np.float32),
                     samples=float(np.ravel(out[sig.SAMPLES])[0]), **blocks)

    def set_state(self, state):
        """The app's `setState`: `set_state`, then each block's setter with the block's vectors, in file order."""
        spec = {s["name"]: s for s in self.model["signatures"][sig.SET_STATE]["inputs"]}
        core = {sig.MASKS: state.masks, sig.COUNTS: state.counts, sig.SAMPLES: [state.samples]}
        self.call(sig.SET_STATE, {name: np.asarray(value, spec[name]["dtype"]).reshape(spec[name]["shape"])
                                  for name, value in core.items()})
        for set_signature, fields in self._state_blocks():
            if getattr(state, fields[0]) is None:
                continue
            setter = {s["name"]: s for s in self.model["signatures"][set_signature]["inputs"]}
            self.call(set_signature, {f: np.asarray(getattr(state, f), setter[f]["dtype"]).reshape(setter[f]["shape"])
                                      for f in fields})

    def _state_blocks(self):
        """(set signature, field names) of each state block, in file order: as the model's metadata describes
        them (the app reads the same), or from the lever table for a model exported before that."""
        described = self.model["metadata"].get("state_blocks")
        if described:
            return [(entry["set_signature"], [f["name"] for f in entry["fields"]]) for entry in described]
        return [(lever.set_signature, list(lever.block.fields)) for lever in levers.LEVERS if lever.block is not None]

    def predict(self, samples):
        """`infer`, one sample per call, as the app's `predict`."""
        return np.stack([self._forward(sig.INFER, s).reshape(-1) for s in samples])

    def masks(self):
        return self.get_state().masks

    def personalize(self, adapt, eval_x, eval_y, metadata):
        """The Personalize button; returns the numbers the app shows (and the manifest promises)."""
        self.reset()
        dense = self.accuracy(eval_x, eval_y)
        report = None
        if self.model["recipe"].get("kind") == AUTO:
            report = auto.personalize(AppPersonalizer(self, metadata), list(adapt), auto_rule(self.model["recipe"]))
        else:
            self.observe(adapt)
            self.apply_recipe()
        masks = self.masks()
        after = self.accuracy(eval_x, eval_y)
        s = measure_sparsity(metadata, masks)
        output = metadata.output_group
        excluded = [] if output is None else [metadata.labels[i] for i in range(output.units)
                                              if masks[output.offset + i] == 0]
        return {"dense_accuracy": dense, "accuracy": after, "pruned_units": s.pruned_units,
                "total_units": s.total_units, "unit_sparsity": s.units, "weight_sparsity": s.weights,
                "mac_sparsity": s.macs, "excluded_classes": excluded,
                **({"chosen": report.recipe, "class_test": report.class_test} if report else {})}


class AppPersonalizer:
    """What `auto_recipe.personalize` asks of a `Personalizer`, each answer one signature call of the app's session.

    AutoRecipe.kt makes the same calls in the same order: every `get_state` here is one there too.
    """

    def __init__(self, session, metadata):
        self.session = session
        self.metadata = metadata

    def reset(self, counts=True, masks=True):
        self.session._scalars(sig.RESET, {sig.CLEAR_COUNTS: int(counts), sig.CLEAR_MASKS: int(masks)})

    def observe(self, x, batch_size=None, progress=None):
        return self.session.observe(x)[0]  # one sample per call, as the app

    def observe_typicality(self, x, batch_size=None, progress=None):
        return self.session.observe(x)

    @property
    def samples(self):
        return int(round(self.session.get_state().samples))

    def get_state(self):
        return self.session.get_state()

    def sparsity(self):
        return measure_sparsity(self.metadata, self.get_state().masks)

    def prune_outputs(self, min_fraction):
        self.session._scalars(sig.PRUNE_OUTPUTS, {sig.MIN_FRACTION: min_fraction})

    def prune_dormant(self, threshold):
        self.session._scalars(sig.PRUNE_DORMANT, {sig.THRESHOLD: threshold})

    def adapt_normalization(self, strength):
        self.session._scalars(sig.ADAPT_NORMALIZATION, {sig.STRENGTH: strength})

    def predict(self, x, batch_size=None):
        return self.session.predict(x)

    def prune_magnitude(self, sparsity):
        self.session._scalars(sig.PRUNE_MAGNITUDE, {sig.SPARSITY: sparsity})

    def set_state(self, state):
        self.session.set_state(state)


def auto_recipe(rule=None):
    """The manifest's automatic recipe: `auto_recipe.personalize` with these `AutoRule` parameters."""
    rule = rule or auto.AutoRule()
    return {"name": "automatic (label-free: class test, dormant units, relative BN shift, how far to prune)",
            "kind": AUTO,
            "rule": dataclasses.asdict(rule)}


def auto_rule(recipe):
    fields = {f.name for f in dataclasses.fields(auto.AutoRule)}
    unknown = set(recipe["rule"]) - fields
    if unknown:
        raise FinePruneError(f"automatic recipe has unknown parameters {sorted(unknown)}; expected {sorted(fields)}")
    return auto.AutoRule(**recipe["rule"])


def check_recipe(model):
    if model["recipe"].get("kind") == AUTO:
        auto_rule(model["recipe"])
        return
    for step in model["recipe"]["steps"]:
        if step["signature"] not in model["signatures"]:
            raise FinePruneError(f"recipe step {step['signature']!r} is not a signature of {model['file']}")
