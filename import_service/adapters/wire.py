"""Protobuf ↔ domain for what the import service's adapters exchange besides the queue's messages
(``shared.amqp.messages``): outcomes, timestamps, and a row as ``row_results`` keeps it.

With ``shared.amqp.messages``, the only place (with the adapters that import it) where the import
service touches protobuf.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from import_service.domain.jobs import FieldChange, Outcome, RowResult
from import_service.domain.rows import FileRow
from shared.amqp.messages import row_to_proto
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb

_OUTCOME_TO_PROTO = {
    Outcome.CREATED: rows_pb.ROW_OUTCOME_CREATED,
    Outcome.UPDATED: rows_pb.ROW_OUTCOME_UPDATED,
    Outcome.UNCHANGED: rows_pb.ROW_OUTCOME_UNCHANGED,
    Outcome.SKIPPED: rows_pb.ROW_OUTCOME_SKIPPED,
    Outcome.FAILED: rows_pb.ROW_OUTCOME_FAILED,
    Outcome.ARCHIVED: rows_pb.ROW_OUTCOME_ARCHIVED,
    Outcome.DELETED: rows_pb.ROW_OUTCOME_DELETED,
}
_OUTCOME_FROM_PROTO = {v: k for k, v in _OUTCOME_TO_PROTO.items()}


def outcome_to_proto(outcome: Outcome) -> rows_pb.RowOutcome.ValueType:
    return _OUTCOME_TO_PROTO[outcome]


def outcome_from_proto(value: int) -> Outcome | None:
    return _OUTCOME_FROM_PROTO.get(value)  # type: ignore[call-overload]


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
        status=message.status,
    )


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
        changes=tuple([FieldChange(c.field, c.old_value, c.new_value) for c in result.changes])
        if result.changes
        else (),
    )


def changes_to_proto(changes: tuple[FieldChange, ...]) -> list[rows_pb.FieldChange]:
    return [rows_pb.FieldChange(field=f, old_value=old, new_value=new) for f, old, new in changes]


def timestamp_to_proto(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp
