"""Read the metadata table of a `.tflite` flatbuffer without TensorFlow.

Only the few fields needed are decoded (Model.buffers, Model.metadata,
Metadata.name/buffer, Buffer.data/offset/size). Every offset is bounds-checked,
so a truncated or random file raises `FinePruneError` instead of reading
garbage.
"""

import hashlib
import struct

from ..errors import ModelError

TFLITE_IDENTIFIER = b"TFL3"

# Field indices in tensorflow/lite/schema/schema.fbs.
_MODEL_BUFFERS = 4
_MODEL_METADATA = 6
_METADATA_NAME = 0
_METADATA_BUFFER = 1
_BUFFER_DATA = 0
_BUFFER_OFFSET = 1
_BUFFER_SIZE = 2


class _Reader:
    def __init__(self, data, source):
        self.data = data
        self.source = source

    def fail(self, what):
        raise ModelError(
            f"{self.source} is not a valid TFLite file ({what}); "
            "it may be truncated or corrupted"
        )

    def unpack(self, fmt, pos):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            self.fail(f"offset {pos} out of range")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def field_pos(self, table, field):
        """Absolute position of a table field, or None when absent."""
        vtable = table - self.unpack("<i", table)
        vtable_size = self.unpack("<H", vtable)
        entry = 4 + 2 * field
        if entry + 2 > vtable_size:
            return None
        rel = self.unpack("<H", vtable + entry)
        return table + rel if rel else None

    def indirect(self, pos):
        return pos + self.unpack("<I", pos)

    def vector(self, pos, elem_size):
        """(start, length) of the vector referenced at `pos`."""
        start = self.indirect(pos)
        length = self.unpack("<I", start)
        if start + 4 + length * elem_size > len(self.data):
            self.fail("vector runs past the end of the file")
        return start + 4, length

    def table_vector(self, table, field):
        pos = self.field_pos(table, field)
        if pos is None:
            return []
        start, length = self.vector(pos, 4)
        return [self.indirect(start + 4 * i) for i in range(length)]


def read_metadata(data, source="model"):
    """Return {name: bytes} of every metadata entry of a TFLite flatbuffer.

    Parameters
    ----------
    data : bytes
        The whole `.tflite` file.
    source : str
        How to name the file in error messages.
    """
    reader, buffers, entries = _parse(data, source)
    return {name: _buffer_bytes(reader, buffers[index]) for name, index in entries.items()}


# The metadata JSON records a SHA-256 of the whole file, computed while the field held 64 zeros; the
# digest is then written over the zeros (same length, so no offset moves). Any changed byte outside
# those 64 characters, weights, graph or metadata alike, changes the digest.
DIGEST_FIELD = "content_sha256"
UNSEALED_DIGEST = "0" * 64


def _digest_marker(value):
    return f'"{DIGEST_FIELD}": "{value}"'.encode("ascii")


def content_digest(data, recorded):
    """SHA-256 (hex) of a sealed file's bytes with its recorded digest put back to zeros."""
    marker = _digest_marker(recorded)
    if data.count(marker) != 1:
        return None
    return hashlib.sha256(data.replace(marker, _digest_marker(UNSEALED_DIGEST), 1)).hexdigest()


def seal(data):
    """Write the digest of `data` into its (zeroed) digest field; see `content_digest`."""
    unsealed = _digest_marker(UNSEALED_DIGEST)
    if data.count(unsealed) != 1:
        raise ValueError("the metadata holds no unsealed digest field")
    return data.replace(unsealed, _digest_marker(hashlib.sha256(data).hexdigest()), 1)


def _parse(data, source):
    """(reader, buffer table positions, {metadata name: buffer index})."""
    data = bytes(data)
    if len(data) < 8:
        raise ModelError(f"{source} is not a TFLite file: only {len(data)} bytes")
    if data[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(
            f"{source} is not a TFLite file: expected identifier {TFLITE_IDENTIFIER!r} "
            f"at byte 4, found {data[4:8]!r}"
        )
    reader = _Reader(data, source)
    model = reader.indirect(0)
    buffers = reader.table_vector(model, _MODEL_BUFFERS)
    entries = {}
    for meta in reader.table_vector(model, _MODEL_METADATA):
        name_pos = reader.field_pos(meta, _METADATA_NAME)
        if name_pos is None:
            continue
        start, length = reader.vector(name_pos, 1)
        name = data[start:start + length].decode("utf-8", "replace")
        buffer_pos = reader.field_pos(meta, _METADATA_BUFFER)
        index = reader.unpack("<I", buffer_pos) if buffer_pos is not None else 0
        if index >= len(buffers):
            reader.fail(f"metadata {name!r} names buffer {index} of {len(buffers)}")
        entries[name] = index
    return reader, buffers, entries


def _buffer_bytes(reader, buffer):
    data_pos = reader.field_pos(buffer, _BUFFER_DATA)
    if data_pos is not None:
        start, length = reader.vector(data_pos, 1)
        return reader.data[start:start + length]
    offset_pos = reader.field_pos(buffer, _BUFFER_OFFSET)
    size_pos = reader.field_pos(buffer, _BUFFER_SIZE)
    if offset_pos is None or size_pos is None:
        return b""
    # Models over 2 GB keep buffers after the flatbuffer, addressed from file start.
    offset = reader.unpack("<Q", offset_pos)
    size = reader.unpack("<Q", size_pos)
    if offset + size > len(reader.data):
        reader.fail("buffer runs past the end of the file")
    return reader.data[offset:offset + size]
