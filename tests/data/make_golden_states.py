"""Golden state blobs written by main's encoder (7b57487; version 4 by 4751684's); version 1 = a version-2 blob without
normalization, with the version field set to 1 and the CRC recomputed (the layout v1 readers used).

Run (from a checkout of that commit): PYTHONPATH=. python tests/data/make_golden_states.py tests/data
Version 4 (magnitude pruning's block, flag 16), from a checkout of 4751684:
PYTHONPATH=. python tests/data/make_golden_states.py tests/data v4
"""
import struct
import zlib
import sys
import numpy as np
from tflite_fineprune.state import State, encode_state

FP = "5a" * 32
rng = np.random.default_rng(7)
N, C, B, D = 6, 3, 4, 2
masks = np.array([1, 0, 1, 1, 0, 1], np.float32)
samples = 5.0
counts = np.round(rng.uniform(0, 5, N), 2).astype(np.float32)

def vec(n):
    return rng.standard_normal(n).astype(np.float32)

comp = dict(sums=vec(N), fill=vec(N) * (1 - masks))
pri = dict(log_weights=vec(C), soft_counts=np.abs(vec(C)))
norm = dict(norm_sums=vec(B), norm_squares=np.abs(vec(B)), norm_count=np.full(B, 40.0, np.float32),
            norm_mean=vec(B), norm_var=np.abs(vec(B)) + 0.1)
proto = dict(proto_counts=np.abs(vec(C)), proto_sums=vec(C * D), head_kernel=vec(D * C))

def blob(**extra):
    return encode_state(FP, State(masks=masks, counts=counts, samples=samples, **extra))

def as_v1(b):
    body = bytearray(b[:-4])
    body[8:10] = struct.pack("<H", 1)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))

cases = {
    "v1_core": as_v1(blob()),
    "v1_compensation_priors": as_v1(blob(**comp, **pri)),
    "v2_core": blob(),
    "v2_compensation": blob(**comp),
    "v2_priors": blob(**pri),
    "v2_normalization": blob(**norm),
    "v2_compensation_priors_normalization": blob(**comp, **pri, **norm),
    "v3_prototypes": blob(**proto),
    "v3_all": blob(**comp, **pri, **norm, **proto),
}

if sys.argv[2:] == ["v4"]:
    rng = np.random.default_rng(11)
    counts = np.round(rng.uniform(0, 5, N), 2).astype(np.float32)
    mag = dict(magnitudes=np.abs(vec(N)) * np.array([1, 1, 1, 1, 0, 0], np.float32))
    comp = dict(sums=vec(N), fill=vec(N) * (1 - masks))
    pri = dict(log_weights=vec(C), soft_counts=np.abs(vec(C)))
    norm = dict(norm_sums=vec(B), norm_squares=np.abs(vec(B)), norm_count=np.full(B, 40.0, np.float32),
                norm_mean=vec(B), norm_var=np.abs(vec(B)) + 0.1)
    proto = dict(proto_counts=np.abs(vec(C)), proto_sums=vec(C * D), head_kernel=vec(D * C))
    cases = {"v4_magnitude": blob(**mag), "v4_all": blob(**comp, **pri, **norm, **proto, **mag)}

for name, b in cases.items():
    open(f"{sys.argv[1]}/state_{name}.bin", "wb").write(b)
    print(name, len(b), b[8:10].hex())
