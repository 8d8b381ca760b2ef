"""Hostile text for every string field of every RPC (issue 7), shared by the identity and import tests.

``rpcs(file_descriptor, service)`` enumerates a service's RPCs from the generated descriptors, and
``string_slots(descriptor)`` every string field of a request message, recursively (nested messages,
repeated fields, map keys and values; for a client-streaming RPC the first message, the header), so
an RPC or field added to the protos is covered without touching the tests.

A value is sent either as text or as raw bytes (``Raw``): protobuf refuses to encode a lone surrogate
(or any invalid UTF-8) client-side, but another client can still put such bytes on the wire, so the
request is serialised with an ASCII placeholder of the same byte length in that field and the bytes
are swapped in afterwards (every length prefix stays right).

``call`` sends the request through a plain synchronous channel with serialisers of our own, so the
tests run hypothesis in a worker thread while the in-process servers keep the event loop.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
from google.protobuf import message as pb_message
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor, MethodDescriptor
from hypothesis import strategies as st

from shared.grpc_kit.errors import error_info, field_violations

MEGABYTE = 1024 * 1024
NEVER = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
LEAKS = ("asyncpg", "Traceback", "Exception", "psycopg", "postgres", "SQL", "0x00", "Error(", "<class")
MAX_DETAILS = 2000
FIELD_REASONS = frozenset({"INVALID_ARGUMENT", "INVALID_EMAIL"})
PAGE_KINDS = ("audit", "search", "pending", "jobs", "rows")
MAX_DEPTH = 4
WELL_KNOWN = "google.protobuf."


@dataclass(frozen=True)
class Raw:
    """Bytes to put on the wire in a string field as they are (maybe not UTF-8)."""

    data: bytes


Hostile = str | Raw


@dataclass(frozen=True)
class Rpc:
    path: str  # /package.Service/Method
    method: MethodDescriptor

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def request(self) -> Descriptor:
        return self.method.input_type


@dataclass(frozen=True)
class Slot:
    """One string field of a request: ``path`` as a violation would name it, ``steps`` to reach it."""

    path: str
    steps: tuple[tuple[str, str], ...]  # (kind, name): kind is "field", "item", "key" or "value"

    @property
    def top(self) -> str:
        return self.steps[0][1]


def rpcs(file: FileDescriptor, service: str) -> list[Rpc]:
    found = file.services_by_name[service]
    return [Rpc(f"/{found.full_name}/{method.name}", method) for method in found.methods]


def string_slots(descriptor: Descriptor) -> list[Slot]:
    return list(_slots(descriptor, "", (), 0))


def _slots(descriptor: Descriptor, prefix: str, steps: tuple[Any, ...], depth: int) -> Iterator[Slot]:
    if depth > MAX_DEPTH or descriptor.full_name.startswith(WELL_KNOWN):
        return
    for field in descriptor.fields:
        path = f"{prefix}{field.name}"
        here = (*steps, ("field", field.name))
        if _is_map(field):
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            if key.type == FieldDescriptor.TYPE_STRING:
                yield Slot(f"{path} key", (*here, ("key", "")))
            if value.type == FieldDescriptor.TYPE_STRING:
                yield Slot(f"{path}[k]", (*here, ("value", "k")))
        elif field.type == FieldDescriptor.TYPE_STRING:
            repeated = _repeated(field)
            yield Slot(f"{path}[0]" if repeated else path, (*here, ("item", "")) if repeated else here)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            repeated = _repeated(field)
            inner = (*here, ("item", "")) if repeated else here
            yield from _slots(field.message_type, f"{path}[0]." if repeated else f"{path}.", inner, depth + 1)


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


# ----------------------------------------------------------------------------------------------
# valid requests to start from: each string field by name (with per-message overrides), an enum's
# first real value, one element in repeated messages, so a hostile value meets a request that would
# otherwise get far (to the database)
# ----------------------------------------------------------------------------------------------

Values = Mapping[str, Callable[[], Any]]


def valid_request(cls: type[pb_message.Message], values: Values) -> Any:
    request = cls()
    _fill(request, values, 0)
    return request


def _fill(message: Any, values: Values, depth: int) -> None:
    descriptor = message.DESCRIPTOR
    if depth > MAX_DEPTH or descriptor.full_name.startswith(WELL_KNOWN):
        return
    chosen_oneofs: set[str] = set()
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in chosen_oneofs or field.type != FieldDescriptor.TYPE_MESSAGE:
                continue
            chosen_oneofs.add(oneof.name)
        value = _value_for(descriptor.name, field.name, values)
        if _is_map(field):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.full_name.startswith(WELL_KNOWN):
                if value is not None and not _repeated(field):  # e.g. a FieldMask the RPC needs
                    getattr(message, field.name).CopyFrom(value)
                continue
            target = getattr(message, field.name).add() if _repeated(field) else getattr(message, field.name)
            _fill(target, values, depth + 1)
            if not _repeated(field) and not target.ListFields():
                target.SetInParent()
        elif value is not None:
            if _repeated(field):
                getattr(message, field.name).extend(value if isinstance(value, list) else [value])
            else:
                setattr(message, field.name, value)
        elif field.type == FieldDescriptor.TYPE_ENUM and not _repeated(field):
            real = [v.number for v in field.enum_type.values if v.number != 0]
            if real:
                setattr(message, field.name, real[0])


def _value_for(message_name: str, field_name: str, values: Values) -> Any:
    make = values.get(f"{message_name}.{field_name}") or values.get(field_name)
    return make() if make else None


def set_slot(request: Any, slot: Slot, value: str) -> None:
    """Put ``value`` in the field ``slot`` names, creating the repeated element or map entry needed."""
    target = request
    steps = list(slot.steps)
    for index, (kind, name) in enumerate(steps):
        last = index == len(steps) - 1
        if kind == "field":
            if last:
                setattr(target, name, value)
                return
            target = getattr(target, name)
        elif kind == "item":
            if last:
                if len(target):
                    target[0] = value
                else:
                    target.append(value)
                return
            target = target[0] if len(target) else target.add()
        elif kind == "key":
            target[value] = "v"
            return
        elif kind == "value":
            target[name] = value
            return


def serialise(request: Any, slot: Slot, value: Hostile) -> bytes:
    """The request's wire bytes with ``value`` in ``slot`` (raw bytes swapped in for a placeholder)."""
    if isinstance(value, str):
        set_slot(request, slot, value)
        return bytes(request.SerializeToString())
    data = value.data
    marker = f"<{uuid.uuid4().hex}>".encode()
    pad = b"" if len(data) >= len(marker) else b"p" * (len(marker) - len(data))
    data = pad + data
    placeholder = (marker * (len(data) // len(marker) + 1))[: len(data)]
    set_slot(request, slot, placeholder.decode())
    wire = bytes(request.SerializeToString())
    assert wire.count(placeholder) == 1, "placeholder not unique"
    return wire.replace(placeholder, data)


# ----------------------------------------------------------------------------------------------
# hostile values
# ----------------------------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
SURROGATE_BYTES = b"\xed\xa0\x80"  # U+D800 as CESU-8/WTF-8: what a lone surrogate becomes on the wire


def tampered_token(kind: str, values: list[Any]) -> str:
    raw = json.dumps({"k": kind, "v": values}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _token_values() -> st.SearchStrategy[list[Any]]:
    scalar = st.one_of(
        _TEXT,
        _TEXT.map(lambda s: s + "\x00"),
        st.just("\ud800"),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.just("2026-01-01T00:00:00+00:00"),
        st.just(str(uuid.uuid4())),
        st.just("9999-12-31T23:59:59.999999-23:59"),
        st.just("0001-01-01T00:00:00+14:00"),
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True),
    )
    return st.lists(scalar, max_size=4)


def hostile_values() -> st.SearchStrategy[Hostile]:
    """NUL, lone surrogates (as wire bytes), 1 MB strings, random text and bytes, tampered tokens."""
    with_nul = st.tuples(_TEXT, _TEXT).map(lambda ab: f"{ab[0]}\x00{ab[1]}")
    surrogate = st.tuples(_TEXT, _TEXT).map(lambda ab: Raw(ab[0].encode() + SURROGATE_BYTES + ab[1].encode()))
    megabyte = st.sampled_from(["a", "é", "0", " ", "\x00", "-"]).map(lambda c: c * MEGABYTE)
    tokens = st.builds(tampered_token, st.sampled_from(PAGE_KINDS), _token_values())
    garbage_token = st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode())
    return st.one_of(
        with_nul, surrogate, megabyte, _TEXT, st.binary(max_size=40).map(Raw), tokens, garbage_token
    )


FIXED: Sequence[tuple[str, Hostile]] = (
    ("nul", "a\x00b"),
    ("surrogate", Raw(b"a" + SURROGATE_BYTES + b"b")),
    ("megabyte", "a" * MEGABYTE),
)


async def table_names(db: asyncpg.Pool) -> list[str]:
    rows = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    return [row["tablename"] for row in rows]


async def row_counts(db: asyncpg.Pool, tables: Sequence[str]) -> dict[str, int]:
    """Rows in each table, in one round trip (the names come from pg_tables)."""
    counts = ",".join(f'(SELECT count(*) FROM "{name}")' for name in tables)  # noqa: S608
    values = await db.fetchval(f"SELECT ARRAY[{counts}]")
    return dict(zip(tables, values, strict=True))


# ----------------------------------------------------------------------------------------------
# calling and judging
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    details: str
    reason: str
    violations: tuple[str, ...]
    response: Any = None


def call(
    channel: grpc.Channel, rpc: Rpc, wire: bytes, metadata: Sequence[tuple[str, str]], extra: Sequence[bytes]
) -> Answer:
    """Send ``wire`` as the request (for a client stream: as the first message, then ``extra``)."""
    response_cls = _message_class(rpc.method.output_type)
    parse = response_cls.FromString
    try:
        if rpc.method.client_streaming:
            callable_ = channel.stream_unary(rpc.path, request_serializer=_raw, response_deserializer=parse)
            response = callable_(iter([wire, *extra]), metadata=metadata, timeout=30)
        elif rpc.method.server_streaming:
            stream = channel.unary_stream(rpc.path, request_serializer=_raw, response_deserializer=parse)
            response = list(stream(wire, metadata=metadata, timeout=30))
        else:
            unary = channel.unary_unary(rpc.path, request_serializer=_raw, response_deserializer=parse)
            response = unary(wire, metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        info = error_info(error)
        return Answer(
            error.code(),
            error.details() or "",
            info.reason if info else "",
            tuple(name for name, _ in field_violations(error)),
        )
    return Answer(grpc.StatusCode.OK, "", "", (), response)


def _raw(data: bytes) -> bytes:
    return data


def _message_class(descriptor: Descriptor) -> type[pb_message.Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def request_class(rpc: Rpc) -> type[pb_message.Message]:
    return _message_class(rpc.request)


def judge(rpc: Rpc, slot: Slot | None, answer: Answer) -> None:
    """The property: never UNKNOWN/INTERNAL, no internal text, a short message with ErrorInfo, and a
    field refusal of a request with one bad field names that field."""
    where = f"{rpc.name} {slot.path if slot else '(whole body)'}"
    assert answer.code not in NEVER, f"{where}: {answer.code.name} {answer.details[:300]!r}"
    assert len(answer.details) <= MAX_DETAILS, f"{where}: a {len(answer.details)}-character message"
    for leak in LEAKS:
        assert leak not in answer.details, f"{where}: internal text in {answer.details[:300]!r}"
    if answer.code == grpc.StatusCode.OK:
        return
    assert answer.reason, f"{where}: {answer.code.name} without ErrorInfo {answer.details[:300]!r}"
    if slot is not None and answer.reason in FIELD_REASONS:
        assert any(v.split(".")[0].split("[")[0].split(" ")[0] == slot.top for v in answer.violations), (
            f"{where}: {answer.reason} naming {answer.violations}, not {slot.top}: {answer.details[:300]!r}"
        )
