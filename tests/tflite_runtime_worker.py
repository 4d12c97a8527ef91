"""Run in the tflite-runtime 2.14 venv (numpy<2, no TensorFlow) by test_backends.py.

usage: python tflite_runtime_worker.py MODEL INPUTS.npz OUT.npz STATE_IN STATE_OUT
"""

import sys

import numpy as np

from tflite_fineprune import Personalizer


def main(model, inputs, out, state_in, state_out):
    data = np.load(inputs)
    p = Personalizer(model, backend="tflite_runtime")
    assert p.backend == "tflite_runtime"
    result = {"dense": p.predict(data["eval"])}
    p.observe(data["adapt"])
    p.prune(float(data["sparsity"]))
    result["pruned"] = p.predict(data["eval"])
    state = p.get_state()
    result["masks"], result["counts"], result["samples"] = state.masks, state.counts, np.array(state.samples)
    p.save_state(state_out)
    fresh = Personalizer(model, backend="tflite_runtime")
    fresh.load_state(state_in)
    result["from_litert_state"] = fresh.predict(data["eval"])
    result["tensorflow_imported"] = np.array("tensorflow" in sys.modules)
    np.savez(out, **result)


if __name__ == "__main__":
    main(*sys.argv[1:])
