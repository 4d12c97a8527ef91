"""Versioned binary state files: one user's masks and activity counters.

Layout (all little-endian; see docs/state_format.md, which the Android app follows):

=======  =====  ===============================================
offset   size   field
=======  =====  ===============================================
0        8      magic ``b"FPSTATE\\0"``
8        2      format version (uint16: the lowest that carries the file's
                blocks, at least 2; `READABLE_VERSIONS` are read)
10       2      flags: one bit per lever state block that follows (its
                `StateBlock.flag` in its lever's descriptor, `levers.LEVERS`)
12       4      number of units N (uint32)
16       32     model fingerprint (SHA-256 bytes from the model metadata)
48       8      samples observed (float64)
56       N      masks, one uint8 (0 or 1) per unit
56+N     4N     activity counters (float32, in samples)
[then           each flagged lever's block in flag order: its float32 vectors
                in field order, lengths as the model metadata's
                `state_blocks` records them (docs/state_format.md's table)]
end-4    4      CRC-32 (zlib) of every byte before it
=======  =====  ===============================================
"""

import dataclasses
import struct
import zlib

import numpy as np

from . import levers
from .errors import ModelError, StateError
from .levers.layout import described_lengths
# Kept importable from here (state.pyi): they lived in this module before safe_io.py.
from .safe_io import atomic_write, check_output_folder, read_file, starts_with  # noqa: F401

MAGIC = b"FPSTATE\0"
STATE_VERSION = 2  # written when no block of a later version is present (so such files stay readable by v2 readers)
_HEADER = struct.Struct("<8sHHI32sd")

# The optional blocks, in file order, come from the lever table (tflite_fineprune/levers/__init__.py).
_BLOCKS = levers.blocks()
READABLE_VERSIONS = tuple(range(1, max(STATE_VERSION, *(b.since for _, b in _BLOCKS)) + 1))
# Samples are counted in float32 inside the model: exact integers up to 2**24, and finite below this.
MAX_SAMPLES = float(np.finfo(np.float32).max)
# Counters are float32 sums of per-sample fractions; allow their rounding error against the sample count.
_COUNT_SLACK = 1e-4


def _state_class():
    """`State`: the core vectors, then one optional field per vector of every lever's state block (the lever
    table's order), so that a new lever's block needs no change here."""
    optional = [(field, np.ndarray, dataclasses.field(default=None)) for _, block in _BLOCKS for field in block.fields]
    cls = dataclasses.make_dataclass("State", [("masks", np.ndarray), ("counts", np.ndarray), ("samples", float)]
                                     + optional, frozen=True)
    cls.__module__ = __name__
    cls.__doc__ = (
        "A user's personalization: unit masks (1 kept, 0 pruned), activity counters and the samples observed;\n"
        "then, each None unless the model carries the lever, the vectors of every lever's state block:\n"
        + "\n".join(f"    {', '.join(block.fields)}: {block.what} (lever {name})" for name, block in _BLOCKS))
    return cls


State = _state_class()


def _present(state, block):
    """Whether `state` carries `block`: all of its fields or none."""
    given = [getattr(state, field) is not None for field in block.fields]
    if any(given) and not all(given):
        missing = [f for f, g in zip(block.fields, given) if not g]
        raise StateError(f"state has some {block.what} values but not {', '.join(missing)}")
    return all(given)


def encode_state(fingerprint_hex, state):
    masks = np.asarray(state.masks)
    counts = np.asarray(state.counts, dtype="<f4")
    if masks.shape != counts.shape or masks.ndim != 1:
        raise StateError(f"masks {masks.shape} and counts {counts.shape} must be equal-length vectors")
    present = [block for _, block in _BLOCKS if _present(state, block)]
    flags = sum(block.flag for block in present)
    version = max([STATE_VERSION] + [block.since for block in present])
    header = _HEADER.pack(MAGIC, version, flags, masks.size, bytes.fromhex(fingerprint_hex),
                          float(state.samples))
    body = header + (masks > 0.5).astype(np.uint8).tobytes() + counts.tobytes()
    for block in present:
        body += b"".join(np.asarray(getattr(state, f), dtype="<f4").ravel().tobytes() for f in block.fields)
    return body + struct.pack("<I", zlib.crc32(body))


def decode_state(blob, fingerprint_hex, num_units, source="state", blocks=None, described=None):
    """Parse and check a state file's bytes against the model it is loaded into.

    `blocks` maps the name of each lever whose state block the model keeps to
    the block's shape (`levers.block_shapes(metadata)`; `decode_model_state`
    passes it). The file must carry exactly those blocks, except that a file
    older than a block's format version lacks it and still loads: the model
    then keeps its exported values for that lever (the trained normalization
    statistics for version 1, the trained kernel before version 3). None: a
    model whose levers keep no state block. `described` maps lever names to
    the block layouts the model's metadata records (`levers.described_blocks`):
    their field lengths replace the lever table's where given.
    """
    blocks = {} if blocks is None else blocks
    described = {} if described is None else described
    if len(blob) < _HEADER.size + 4:
        raise StateError(f"{source} is not a tflite-fineprune state file: only {len(blob)} bytes")
    magic, version, flags, units, fingerprint, samples = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise StateError(f"{source} is not a tflite-fineprune state file (magic {magic!r}, expected {MAGIC!r})")
    if version not in READABLE_VERSIONS:
        raise StateError(f"{source} has state format version {version}; this tflite-fineprune reads "
                         f"{', '.join(map(str, READABLE_VERSIONS))}")
    known = sum(block.flag for _, block in _BLOCKS if block.since <= version)
    if flags & ~known:
        raise StateError(f"{source} has unknown flags {flags:#x}")
    # Another model's intact file is named as such before its size is judged by this model's vectors (which
    # would call it "truncated or padded"); its own checksum tells it from a damaged file of this model.
    foreign = fingerprint.hex() != fingerprint_hex or units != num_units
    owner = (f"another model (fingerprint {fingerprint.hex()[:12]}…, {units} units; "
             f"this model is {fingerprint_hex[:12]}…, {num_units} units)")
    if foreign and zlib.crc32(blob[:-4]) == struct.unpack_from("<I", blob, len(blob) - 4)[0]:
        raise StateError(f"{source} belongs to {owner}")
    # Each block the file carries, with its field lengths (its shape from the model, its units from the file).
    carried = [(block, _lengths(name, block, units, blocks, described)) for name, block in _BLOCKS
               if flags & block.flag]
    expected_size = _HEADER.size + 5 * units + 4 * sum(sum(lengths) for _, lengths in carried) + 4
    if len(blob) != expected_size:
        raise StateError(
            f"{source} is truncated or padded: {len(blob)} bytes, expected {expected_size} for {units} units"
            + (f"; its header names {owner}" if foreign else "")
        )
    (crc,) = struct.unpack_from("<I", blob, expected_size - 4)
    if zlib.crc32(blob[:expected_size - 4]) != crc:
        raise StateError(f"{source} is corrupted: checksum mismatch")
    if foreign:
        raise StateError(f"{source} belongs to {owner}")
    for name, block in _BLOCKS:
        has, wanted = bool(flags & block.flag), name in (described or blocks)
        if version < block.since and not has:
            continue  # the file predates the block
        if has != wanted:
            raise StateError(f"{source} {'has' if has else 'lacks'} {block.what} values but the model "
                             f"{'uses' if wanted else 'does not use'} {block.what.replace('-', ' ')}")
    masks = np.frombuffer(blob, np.uint8, units, _HEADER.size).astype(np.float32)
    counts = np.frombuffer(blob, "<f4", units, _HEADER.size + units).astype(np.float32)
    position = _HEADER.size + 5 * units
    extra = {}
    for block, lengths in carried:
        values = {}
        for field, length in zip(block.fields, lengths):
            values[field] = np.frombuffer(blob, "<f4", length, position).astype(np.float32)
            position += 4 * length
        extra[block] = values
    if np.any(masks > 1) or not all(np.all(np.isfinite(v)) for v in [counts] + [
            v for values in extra.values() for v in values.values()]):
        raise StateError(f"{source} holds invalid values (masks not 0/1, or non-finite counters)")
    check_counters(counts, samples, source)
    for block, values in extra.items():
        block.check(values, source)
    fields = {field: value for values in extra.values() for field, value in values.items()}
    return State(masks=masks, counts=counts, samples=float(samples), **fields)


def _lengths(name, block, units, shapes, described):
    """The float count of each field of `block` in a file of `units` units: from the model's recorded layout
    when it has one, else from the lever table and the model's dimensions."""
    if name in described:
        description = described[name]
        if [field["name"] for field in description["fields"]] != list(block.fields):
            raise ModelError(f"the model describes the {block.what} state block with fields "
                             f"{[field['name'] for field in description['fields']]}; this tflite-fineprune "
                             f"knows it as {list(block.fields)}")
        return described_lengths(description, units)
    return block.lengths(units, shapes.get(name) or (0, 0))


def decode_model_state(blob, metadata, source="state"):
    """`decode_state` for the model `metadata` describes: the blocks its levers keep, sized by the layout its
    metadata records (or, in files exported before that, by the lever table)."""
    return decode_state(blob, metadata.fingerprint, metadata.num_units, source, blocks=levers.block_shapes(metadata),
                        described=levers.described_blocks(metadata))


def check_counters(counts, samples, source="state"):
    """Refuse a sample count that is negative, fractional or beyond float32, and counters above it.

    Each counter sums at most one per observed sample (a fraction of positions, or
    one prediction), so it can never exceed the sample count.
    """
    if not np.isfinite(samples) or samples < 0 or samples > MAX_SAMPLES:
        raise StateError(f"{source}: samples observed is {samples!r}; expected a count in [0, {MAX_SAMPLES:.3g}]")
    if samples != np.floor(samples):
        raise StateError(f"{source}: samples observed is {samples!r}; expected a whole number")
    counts = np.asarray(counts, np.float64)
    if counts.size and (np.any(counts < 0) or not np.all(np.isfinite(counts))):
        raise StateError(f"{source}: activity counters must be finite and non-negative")
    limit = samples * (1 + _COUNT_SLACK) + _COUNT_SLACK
    if counts.size and counts.max() > limit:
        raise StateError(f"{source}: an activity counter ({counts.max():.6g}) exceeds the {samples:.0f} samples "
                         "observed; the counters are inconsistent")


# No state file of any model comes near this; a larger "state file" is refused unread.
MAX_STATE_BYTES = 1 << 28


def is_state_file(path):
    """Whether `path` starts like a state file (of any model, intact or not)."""
    return starts_with(path, MAGIC)
