"""Protobuf wire format for the big ``repeated bytes`` fields of inference messages, without copies.

A ModelInferRequest of 4 MiB parsed by protobuf is copied into the parser's arena, and again
into a Python ``bytes`` when ``raw_input_contents[i]`` is read; a response built as a message
is copied into the arena when its raw entries are set, and again (growing its buffer) when it
is serialized. For a tensor those copies cost more than the model (issue 13: the worker made
about nine copies of every 4 MiB echo). The wire format lets a message be cut and joined at
field boundaries (fields of one number, in order, form the repeated field), so:

- ``split_repeated_bytes`` cuts the entries of one length-delimited field out of a serialized
  message as memoryviews over its bytes (zero-copy) and returns the rest of the message, small,
  for protobuf to parse;
- ``append_repeated_bytes`` serializes entries after a serialized message with one copy.

Only the top level is scanned, at most ``max_fields`` fields: anything that is not plain wire
format there (groups, a truncated varint or length) or a message with more fields than that
returns ``None``, and the caller parses the whole message with protobuf, which reports errors
as it always has. The scan is Python: bounding the fields keeps its cost O(max_fields)
whatever the bytes say.
"""

from __future__ import annotations

__all__ = ["split_repeated_bytes", "append_repeated_bytes", "read_varint", "encode_varint"]

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


def read_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """(value, next position); (-1, -1) when it runs past ``end`` or over 10 bytes."""
    value = shift = 0
    for i in range(pos, min(end, pos + _MAX_VARINT_BYTES)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    return -1, -1


def split_repeated_bytes(
    data: bytes | memoryview, field_number: int, *, max_fields: int = 1024
) -> tuple[bytes, list[memoryview]] | None:
    """(the message without ``field_number``'s entries, the entries as views), or None.

    None: the top level is not plain wire format, or has more than ``max_fields`` fields;
    parse ``data`` as a whole instead. Entries of ``field_number`` with another wire type are
    left in the message, where protobuf treats them as it would have.
    """
    view = memoryview(data)
    end = len(view)
    rest: list[memoryview] = []
    entries: list[memoryview] = []
    pos = kept_from = fields = 0
    while pos < end:
        fields += 1
        if fields > max_fields:
            return None
        start = pos
        key, pos = read_varint(view, pos, end)
        if key < 0:
            return None
        wire_type = key & 7
        if wire_type == _VARINT:
            _, pos = read_varint(view, pos, end)
            if pos < 0:
                return None
        elif wire_type == _FIXED64:
            pos += 8
        elif wire_type == _FIXED32:
            pos += 4
        elif wire_type == _LENGTH:
            length, pos = read_varint(view, pos, end)
            if length < 0:
                return None
            value_from = pos
            pos += length
            if pos <= end and key >> 3 == field_number:
                if start > kept_from:
                    rest.append(view[kept_from:start])
                entries.append(view[value_from:pos])
                kept_from = pos
        else:  # groups (3, 4) and reserved types: not ours to cut
            return None
        if pos > end:
            return None
    if not entries:
        return bytes(view) if not isinstance(data, bytes) else data, []
    if kept_from < end:
        rest.append(view[kept_from:end])
    return b"".join(rest), entries


def encode_varint(value: int) -> bytes:
    """``value`` (>= 0) as a protobuf varint."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def append_repeated_bytes(
    message: bytes, field_number: int, entries: list[bytes | memoryview]
) -> bytes:
    """``message`` followed by ``entries`` as its repeated bytes field ``field_number``.

    One copy of every entry (the join); protobuf reads the result as the message with those
    entries appended, in order, to that field.
    """
    if not entries:
        return message
    key = encode_varint(field_number << 3 | _LENGTH)
    chunks: list[bytes | memoryview] = [message]
    for entry in entries:
        size = entry.nbytes if isinstance(entry, memoryview) else len(entry)
        chunks.append(key + encode_varint(size))
        chunks.append(entry)
    return b"".join(chunks)
