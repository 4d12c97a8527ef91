"""The state-block layout an export records in its metadata (`ModelMetadata.state_blocks`).

Each lever with a state block that the export carries is described by its
name, header flag bit, format version `since`, the signature that restores it
and its vectors in file order, each with its length in this model and whether
that length follows the state file's unit count. Readers (state.py, the
Android codec, the recorded session) take the layout from the model, so a new
lever's block needs no reader change; a model exported before the description
existed has none, and readers fall back to the lever table.
"""

from __future__ import annotations

from ..errors import ModelError


def describe_blocks(levers_used, metadata) -> tuple:
    """The `state_blocks` metadata entries of an export carrying `levers_used` (the lever table's order)."""
    described = []
    for lever in levers_used:
        if lever.block is None:
            continue
        shape = lever.block_shape(metadata)
        lengths = lever.block.lengths(metadata.num_units, shape)
        # A field whose length moves with the unit count is sized by the state file's header, as the codec does.
        grown = lever.block.lengths(metadata.num_units + 1, shape)
        described.append({
            "lever": lever.name,
            "flag": int(lever.block.flag),
            "since": int(lever.block.since),
            "set_signature": lever.set_signature,
            "fields": [{"name": field, "length": int(length), "per_unit": bool(length != more)}
                       for field, length, more in zip(lever.block.fields, lengths, grown)],
        })
    return tuple(described)


def check_descriptions(descriptions, source: str) -> None:
    """Refuse a `state_blocks` entry that is not a well-formed block description (FinePruneError naming it)."""
    flags = set()
    for entry in descriptions:
        def fail(what, entry=entry):
            raise ModelError(f"{source}: tflite-fineprune metadata field state_blocks has {entry!r}; expected "
                             f"{what}")
        if not isinstance(entry, dict) or not isinstance(entry.get("lever"), str) or not entry["lever"]:
            fail("objects with a lever name, flag, since, set_signature and fields")
        flag, since, fields = entry.get("flag"), entry.get("since"), entry.get("fields")
        if not _is_int(flag) or flag <= 0 or flag & (flag - 1) or flag in flags or flag >= 1 << 16:
            fail("a flag that is one bit of the 16-bit header flags, each bit used once")
        flags.add(flag)
        if not _is_int(since) or since < 1:
            fail("since, a state format version ≥ 1")
        if entry.get("set_signature") is not None and not isinstance(entry["set_signature"], str):
            fail("set_signature, a signature name or null")
        if not isinstance(fields, list) or not fields or not all(
                isinstance(f, dict) and isinstance(f.get("name"), str) and f["name"] and _is_int(f.get("length"))
                and f["length"] >= 0 and isinstance(f.get("per_unit"), bool) for f in fields):
            fail("fields, a non-empty list of {name, length ≥ 0, per_unit true/false}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def described_lengths(description: dict, units: int) -> tuple:
    """The float count of each field of a described block, for a state file of `units` units."""
    return tuple(units if field["per_unit"] else field["length"] for field in description["fields"])
