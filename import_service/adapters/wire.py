"""Protobuf ↔ domain for the values every adapter exchanges: rows, outcomes, modes, timestamps.

The only place (with the adapters that import it) where the import service touches protobuf.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from import_service.domain.jobs import ImportMode, Outcome, RowResult
from import_service.domain.rows import MAX_TRANSPORT_FIELD_CHARS, FileRow, cap_transport_field
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb

_MODE_TO_PROTO = {
    ImportMode.ONGOING_SYNC: rows_pb.IMPORT_MODE_ONGOING_SYNC,
    ImportMode.MANUAL_FILE: rows_pb.IMPORT_MODE_MANUAL_FILE,
}
_MODE_FROM_PROTO = {v: k for k, v in _MODE_TO_PROTO.items()}
_OUTCOME_TO_PROTO = {
    Outcome.CREATED: rows_pb.ROW_OUTCOME_CREATED,
    Outcome.UPDATED: rows_pb.ROW_OUTCOME_UPDATED,
    Outcome.UNCHANGED: rows_pb.ROW_OUTCOME_UNCHANGED,
    Outcome.SKIPPED: rows_pb.ROW_OUTCOME_SKIPPED,
    Outcome.FAILED: rows_pb.ROW_OUTCOME_FAILED,
}
_OUTCOME_FROM_PROTO = {v: k for k, v in _OUTCOME_TO_PROTO.items()}


def mode_to_proto(mode: ImportMode) -> rows_pb.ImportMode.ValueType:
    return _MODE_TO_PROTO[mode]


def mode_from_proto(value: int) -> ImportMode | None:
    """None for IMPORT_MODE_UNSPECIFIED or an unknown number."""
    return _MODE_FROM_PROTO.get(value)  # type: ignore[call-overload]


def outcome_to_proto(outcome: Outcome) -> rows_pb.RowOutcome.ValueType:
    return _OUTCOME_TO_PROTO[outcome]


def outcome_from_proto(value: int) -> Outcome | None:
    return _OUTCOME_FROM_PROTO.get(value)  # type: ignore[call-overload]


def row_from_proto(row: rows_pb.StudentRow) -> FileRow:
    """A received row, every value capped to the transport bound (row_number must be ≥ 1)."""
    username, email, first, last, auth = (
        row.username,
        row.email_address,
        row.first_name,
        row.last_name,
        row.auth_identifier,
    )
    if max(len(username), len(email), len(first), len(last), len(auth)) > MAX_TRANSPORT_FIELD_CHARS:
        username, email, first, last, auth = map(cap_transport_field, (username, email, first, last, auth))
    extra = (
        tuple((cap_transport_field(k), cap_transport_field(v)) for k, v in row.extra.items())
        if row.extra
        else ()
    )
    return FileRow(row.row_number, username, email, first, last, auth, extra)


def row_to_proto(row: FileRow) -> rows_pb.StudentRow:
    message = rows_pb.StudentRow(
        row_number=row.row_number,
        username=row.username,
        email_address=row.email_address,
        first_name=row.first_name,
        last_name=row.last_name,
        auth_identifier=row.auth_identifier,
    )
    if row.extra:  # building an empty map costs as much as the rest of the row
        message.extra.update(row.extra)
    return message


def row_to_bytes(row: FileRow) -> bytes:
    """The row as the bytes of a ``StudentRow`` (as ``row_results`` keeps it)."""
    return row_to_proto(row).SerializeToString()


def row_from_bytes(row_number: int, data: bytes) -> FileRow:
    """A row kept by ``row_to_bytes``, numbered ``row_number``."""
    message = rows_pb.StudentRow()
    message.ParseFromString(data)
    return FileRow(
        row_number=row_number,
        username=message.username,
        email_address=message.email_address,
        first_name=message.first_name,
        last_name=message.last_name,
        auth_identifier=message.auth_identifier,
        extra=tuple(message.extra.items()),
    )


def rows_to_proto(rows: Sequence[FileRow]) -> list[rows_pb.StudentRow]:
    return [row_to_proto(row) for row in rows]


def result_from_proto(result: rows_pb.RowResult) -> RowResult:
    outcome = outcome_from_proto(result.outcome)
    if outcome is None:
        raise ValueError(f"row {result.row_number}: identity answered no outcome")
    return RowResult(
        row_number=result.row_number,
        outcome=outcome,
        approved=result.approved,
        user_id=result.user_id,
        reason=result.reason,
        message=result.message,
    )


def timestamp_to_proto(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp
