"""Seeded byte mutations of an exported model, re-sealed so that the SHA-256 check passes and the parsers see them.

The export records a SHA-256 of the whole file in the metadata JSON (`tflite/flatbuffer.py`: computed while the
field held 64 zeros). `reseal` recomputes it the same way, as someone crafting a hostile file would, so that the
integrity check no longer stands between the mutated bytes and the flatbuffer readers, the metadata parser and
the interpreter. Four kinds, chosen to reach different readers:

- `bytes`: a few random bytes anywhere outside the digest itself;
- `truncate`: the file cut short, or its tail zeroed (the length kept);
- `table`: a table's vtable offset, a vtable entry, a field (often an offset to a vector, string or table) or a
  vector length set to a boundary or random value, at positions found by walking the model with the schema;
- `json`: the metadata JSON changed in place (same length: a digit, a quote, a bracket, a key letter).
"""

import hashlib
import re

import numpy as np

from tflite_fineprune.tflite.flatbuffer import read_metadata
from tflite_fineprune.metadata import METADATA_NAME

_DIGEST = re.compile(rb'"content_sha256": "([0-9a-f]{64})"')
ZERO_DIGEST = b"0" * 64


def reseal(blob):
    """`blob` with a digest matching its bytes (unchanged where the digest field itself is gone)."""
    found = list(_DIGEST.finditer(blob))
    if len(found) != 1:
        return bytes(blob)
    start, end = found[0].span(1)
    zeroed = blob[:start] + ZERO_DIGEST + blob[end:]
    return zeroed[:start] + hashlib.sha256(zeroed).hexdigest().encode() + zeroed[end:]


def digest_span(blob):
    found = list(_DIGEST.finditer(blob))
    assert len(found) == 1, "the model holds no sealed digest"
    return found[0].span(0)


def json_span(blob):
    body = read_metadata(blob)[METADATA_NAME]
    start = blob.find(body)
    assert start >= 0
    return start, start + len(body)


def table_positions(blob):
    """Positions of every table of the model the schema reaches (model, subgraphs, tensors, operators, ...)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(blob, 0)
    tables = [model]
    for i in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(i)
        tables.append(subgraph)
        tables += [subgraph.Tensors(j) for j in range(subgraph.TensorsLength())]
        tables += [subgraph.Operators(j) for j in range(subgraph.OperatorsLength())]
    tables += [model.Buffers(i) for i in range(model.BuffersLength())]
    tables += [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    tables += [model.Metadata(i) for i in range(model.MetadataLength())]
    for i in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(i)
        tables.append(signature)
        tables += [signature.Inputs(j) for j in range(signature.InputsLength())]
        tables += [signature.Outputs(j) for j in range(signature.OutputsLength())]
    return [t._tab.Pos for t in tables]


def _fields(blob, table):
    """(vtable entry positions, field positions) of the table at `table`."""
    vtable = table - int.from_bytes(blob[table:table + 4], "little", signed=True)
    size = int.from_bytes(blob[vtable:vtable + 2], "little")
    entries = list(range(vtable + 4, vtable + size, 2))
    fields = [table + int.from_bytes(blob[e:e + 2], "little") for e in entries]
    return entries, [f for f in fields if f != table]


def _boundary_value(rng, blob, original):
    choices = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, len(blob), len(blob) - 4, int(rng.integers(0, len(blob))),
               (original + int(rng.integers(-64, 65))) % (1 << 32), int(rng.integers(0, 1 << 32))]
    return choices[int(rng.integers(len(choices)))]


def _put(blob, position, value, size=4):
    blob[position:position + size] = (value % (1 << (8 * size))).to_bytes(size, "little")


def mutate_bytes(rng, blob, protected):
    out = bytearray(blob)
    for _ in range(int(rng.integers(1, 9))):
        position = int(rng.integers(0, len(out)))
        if not protected[0] <= position < protected[1]:
            out[position] = int(rng.integers(0, 256))
    return bytes(out)


def mutate_truncate(rng, blob, protected):
    cut = int(rng.integers(protected[1], len(blob)))
    if rng.random() < 0.5:
        return bytes(blob[:cut])
    return bytes(blob[:cut]) + bytes(len(blob) - cut)


def mutate_table(rng, blob, tables):
    out = bytearray(blob)
    table = tables[int(rng.integers(len(tables)))]
    entries, fields = _fields(blob, table)
    kind = int(rng.integers(4))
    if kind == 0 or not fields:
        _put(out, table, _boundary_value(rng, blob, int.from_bytes(blob[table:table + 4], "little")))
    elif kind == 1 and entries:
        entry = entries[int(rng.integers(len(entries)))]
        _put(out, entry, int(rng.choice([0, 2, 4, 0xFFFF, int(rng.integers(0, 0x10000))])), size=2)
    else:
        field = fields[int(rng.integers(len(fields)))]
        original = int.from_bytes(blob[field:field + 4], "little")
        target = field + original
        if kind == 3 and target + 4 <= len(blob):  # the field as an offset: the length of what it points to
            field, original = target, int.from_bytes(blob[target:target + 4], "little")
        _put(out, field, _boundary_value(rng, blob, original))
    return bytes(out)


_JSON_CHARACTERS = b'{}[]",:0123456789-.eEaz \\\x00\xff'


def mutate_json(rng, blob, span, protected):
    out = bytearray(blob)
    positions = [p for p in range(*span) if not protected[0] <= p < protected[1]]
    for _ in range(int(rng.integers(1, 4))):
        position = positions[int(rng.integers(len(positions)))]
        if chr(out[position]).isdigit() and rng.random() < 0.6:
            out[position] = ord("0") + int(rng.integers(10))
        elif rng.random() < 0.5 and position + 1 < span[1] and not protected[0] <= position + 1 < protected[1]:
            out[position], out[position + 1] = out[position + 1], out[position]
        else:
            out[position] = _JSON_CHARACTERS[int(rng.integers(len(_JSON_CHARACTERS)))]
    return bytes(out)


KINDS = ("bytes", "truncate", "table", "json")


def _mutate(kind, rng, blob, protected, span, tables):
    if kind == "bytes":
        return mutate_bytes(rng, blob, protected)
    if kind == "truncate":
        return mutate_truncate(rng, blob, protected)
    if kind == "table":
        return mutate_table(rng, blob, tables)
    return mutate_json(rng, blob, span, protected)


def mutants(blob, count, seed=0):
    """`count` re-sealed mutants of `blob`, as (kind, bytes), the kinds in turn; the same for the same seed."""
    rng = np.random.default_rng(seed)
    protected = digest_span(blob)
    span = json_span(blob)
    tables = table_positions(blob)
    made = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        mutated = blob
        while mutated == blob:  # a byte may be drawn as the value it had: draw again
            mutated = _mutate(kind, rng, blob, protected, span, tables)
        made.append((kind, reseal(mutated)))
    return made
