"""The TF-free runtime's whole routine under an address-space limit, with its peak memory (run in a subprocess).

usage: python memory_worker.py MODEL INPUTS.npy WORKDIR LIMIT_MIB {levers,personalize} [--no-slim]

Sets RLIMIT_AS to LIMIT_MIB (0: none) before importing anything else, then opens MODEL, observes INPUTS
(levers: `observe` + `prune(0.3)`; personalize: the automatic `personalize`), saves the state, loads it into a
fresh Personalizer, slims it (unless --no-slim) and opens a malformed model, which must be refused with
FinePruneError (not MemoryError). Prints one JSON line: backend, whether TensorFlow was imported, peak address
space (VmPeak) and peak resident memory (VmHWM) in MiB. Used by tests/test_memory.py and benchmarks/memory.py.
"""

import resource
import sys


def limit_address_space(mib):
    if mib:
        resource.setrlimit(resource.RLIMIT_AS, (mib << 20, mib << 20))


def peaks_mib():
    """`(VmPeak, VmHWM)` of this process in MiB, from /proc (Linux)."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmPeak", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    return found["VmPeak"], found["VmHWM"]


def main(model, inputs, workdir, limit_mib, routine, *flags):
    limit_address_space(int(limit_mib))
    import json
    import os

    import numpy as np

    from tflite_fineprune import FinePruneError, Personalizer

    x = np.load(inputs)
    user = Personalizer(model)
    if routine == "levers":
        user.observe(x)
        user.prune(0.3)
    else:
        user.personalize(x)
    state = os.path.join(workdir, "user.state")
    user.save_state(state)
    fresh = Personalizer(model)
    fresh.load_state(state)
    agree = bool(np.allclose(fresh.predict(x[:8]), user.predict(x[:8]), atol=1e-5))
    slim_bytes = None
    if "--no-slim" not in flags:
        slim_bytes = fresh.slim(os.path.join(workdir, "user_slim.tflite")).slim_bytes
    malformed = os.path.join(workdir, "malformed.tflite")
    with open(malformed, "wb") as f:
        f.write(b"\0\0\0\0TFL3" + bytes(64))
    try:
        Personalizer(malformed)
        refused = None
    except FinePruneError as exc:
        refused = str(exc)
    peak, resident = peaks_mib()
    print(json.dumps({"backend": user.backend, "tensorflow_imported": "tensorflow" in sys.modules,
                      "reloaded_state_agrees": agree, "slim_bytes": slim_bytes, "malformed_refused": refused,
                      "peak_address_space_mib": round(peak, 1), "peak_resident_mib": round(resident, 1)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
