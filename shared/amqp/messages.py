"""The queue contract's wire form (api.md, "Queue contract"): a job's messages as protobuf bytes.

A message is an ``ImportMessage``: the job's header fields, then its rows (``StudentRow``, the same
form identity's ApplyStudentRows and the import service's row records use) or its end. Encoding is
what a connector does (the CLI, SubmitFile, RetryFailedRows); the import service's consumer decodes
with the row and mode conversions below. The one place, with the adapters that import it, where a
row meets protobuf on its way through the queue.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from import_service.domain.jobs import ImportMode, JobSpec
from import_service.domain.rows import MAX_TRANSPORT_FIELD_CHARS, FileRow, cap_transport_field
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_MODE_TO_PROTO = {
    ImportMode.ONGOING_SYNC: rows_pb.IMPORT_MODE_ONGOING_SYNC,
    ImportMode.MANUAL_FILE: rows_pb.IMPORT_MODE_MANUAL_FILE,
}
_MODE_FROM_PROTO = {v: k for k, v in _MODE_TO_PROTO.items()}


def mode_to_proto(mode: ImportMode) -> rows_pb.ImportMode.ValueType:
    return _MODE_TO_PROTO[mode]


def mode_from_proto(value: int) -> ImportMode | None:
    """None for IMPORT_MODE_UNSPECIFIED or an unknown number."""
    return _MODE_FROM_PROTO.get(value)  # type: ignore[call-overload]


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
    status = cap_transport_field(row.status) if row.status else ""
    extra = (
        tuple((cap_transport_field(k), cap_transport_field(v)) for k, v in row.extra.items())
        if row.extra
        else ()
    )
    return FileRow(row.row_number, username, email, first, last, auth, extra, status)


def _student_row(make: Callable[..., rows_pb.StudentRow], row: FileRow) -> rows_pb.StudentRow:
    """``row`` as the message ``make`` builds: ``StudentRow`` itself, or a repeated field's ``add``."""
    message = make(
        row_number=row.row_number,
        username=row.username,
        email_address=row.email_address,
        first_name=row.first_name,
        last_name=row.last_name,
        auth_identifier=row.auth_identifier,
        status=row.status,
    )
    if row.extra:  # building an empty map costs as much as the rest of the row
        message.extra.update(row.extra)
    return message


def row_to_proto(row: FileRow) -> rows_pb.StudentRow:
    return _student_row(rows_pb.StudentRow, row)


def add_rows(repeated: RepeatedCompositeFieldContainer[rows_pb.StudentRow], rows: Sequence[FileRow]) -> None:
    """Appends ``rows`` to a repeated ``StudentRow`` field in place: ``add()`` builds each message
    where it stays, where a list of messages handed to a constructor or ``extend`` is copied (half
    the cost of a row's encoding)."""
    add = repeated.add
    for row in rows:
        _student_row(add, row)


@functools.lru_cache(maxsize=256)
def _header(spec: JobSpec) -> bytes:
    """The job's header fields, serialized once per job: a message is its header's bytes followed by
    its body's (protobuf merges concatenated messages), so one-row messages do not rebuild the header."""
    return pb.ImportMessage(
        job_id=spec.job_id,
        school_id=spec.school_id,
        mode=mode_to_proto(spec.mode),
        sensitive_fields_update=spec.sensitive_fields_update,
        dry_run=spec.dry_run,
        source_name=spec.source_name,
        parent_job_id=spec.parent_job_id,
        full_roster=spec.full_roster,
    ).SerializeToString()


def encode_rows(spec: JobSpec, rows: Sequence[FileRow]) -> bytes:
    body = pb.ImportMessage()
    add_rows(body.rows.rows, rows)
    return _header(spec) + body.SerializeToString()


def encode_end(spec: JobSpec, total_rows: int) -> bytes:
    body = pb.ImportMessage()
    body.end.total_rows = total_rows
    return _header(spec) + body.SerializeToString()
