"""Requests that do not decode: which field is to blame, so the refusal can name it.

protobuf refuses a message whose string field is not UTF-8 (a lone surrogate another client put on
the wire, Latin-1 text, random bytes) with one ``DecodeError`` for the whole message. The servers
answer INVALID_ARGUMENT instead of grpc's default (UNKNOWN with the parser's text); this walks the
wire format along the message's descriptor to name the first string field that is not UTF-8, e.g.
``header.source_name`` or ``rows[2].email_address``.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from shared.errors import FieldViolation, Reason, RollcallError

MAX_DEPTH = 16
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class _Malformed(Exception):
    """The bytes are not a protobuf message at all (truncated, bad tag, groups)."""


def undecodable_request(descriptor: Descriptor | None, data: bytes) -> RollcallError:
    """The INVALID_ARGUMENT for ``data`` that did not decode as a ``descriptor`` message."""
    kind = descriptor.full_name if descriptor is not None else "request"
    field = None
    if descriptor is not None:
        try:
            field = non_utf8_field(descriptor, data)
        except _Malformed:
            field = None
    if field is None:
        return RollcallError(Reason.INVALID_ARGUMENT, f"the request is not a valid {kind} message")
    description = "is not valid UTF-8 text (e.g. a lone surrogate)"
    return RollcallError(
        Reason.INVALID_ARGUMENT, f"{field}: {description}", (FieldViolation(field, description),)
    )


def non_utf8_field(descriptor: Descriptor, data: bytes, prefix: str = "", depth: int = 0) -> str | None:
    """The path of the first string field of ``data`` whose bytes are not UTF-8, or None."""
    if depth > MAX_DEPTH:
        return None
    position, seen = 0, dict[int, int]()
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            _, position = _varint(data, position)
        elif wire_type == _FIXED64:
            position += 8
        elif wire_type == _FIXED32:
            position += 4
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            chunk, position = data[position : position + length], position + length
            if len(chunk) != length:
                raise _Malformed
            field = descriptor.fields_by_number.get(number)
            if field is not None:
                found = _check(field, chunk, prefix, seen, depth)
                if found is not None:
                    return found
        else:
            raise _Malformed
        if position > len(data):
            raise _Malformed
    return None


def _check(field: FieldDescriptor, chunk: bytes, prefix: str, seen: dict[int, int], depth: int) -> str | None:
    name = prefix + field.name
    inner: Descriptor | None = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
    if field.is_repeated:
        index = seen.get(field.number, 0)
        seen[field.number] = index + 1
        if inner is not None and inner.GetOptions().map_entry:
            found = non_utf8_field(inner, chunk, "", depth + 1)
            return None if found is None else (f"{name} key" if found == "key" else name)
        name = f"{name}[{index}]"
    if field.type == FieldDescriptor.TYPE_STRING:
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return name
        return None
    if inner is not None:
        return non_utf8_field(inner, chunk, f"{name}.", depth + 1)
    return None


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise _Malformed
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
