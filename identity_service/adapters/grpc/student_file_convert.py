"""ApplyStudentRows request/response ↔ service values, with the checks of the request's shape.

The servicer method is ``response_to_proto(await apply_student_rows(new_uow, request_from_proto(request),
current_caller().client))``. The rows' contents are checked by the decision table (a bad row is a FAILED
row, not a refused call); here only the envelope is: school id, job id, mode, 1..1000 rows with
distinct row numbers of 1 or more. ``full_roster`` is passed on as it is (it matters to dry runs only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType

from identity_service.adapters.grpc.converters import domain_enum
from identity_service.domain.fields import Violations, unreadable_character_problem
from identity_service.domain.student_file import ImportMode, IncomingRow, RowOutcome, RowResult
from identity_service.service.inputs import required_id
from identity_service.service.student_file import RowBatchRequest
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb

MAX_ROWS = 1000
JOB_ID_MAX = 128
_NO_EXTRA: Mapping[str, str] = MappingProxyType({})
_OUTCOMES = {outcome: rows_pb.RowOutcome.Value(f"ROW_OUTCOME_{outcome.value}") for outcome in RowOutcome}


def request_from_proto(request: pb.ApplyStudentRowsRequest) -> RowBatchRequest:
    """Plain values; raises INVALID_ARGUMENT naming every bad field of the envelope."""
    found = Violations()
    school_id = required_id(request.school_id, "school_id", found)
    job_id = request.job_id.strip()
    if not 1 <= len(job_id) <= JOB_ID_MAX:
        found.add("job_id", f"is required (1..{JOB_ID_MAX} characters)")
    elif (problem := unreadable_character_problem(job_id)) is not None:
        found.add("job_id", problem)
    mode = domain_enum(ImportMode, rows_pb.ImportMode, "IMPORT_MODE", request.mode)
    if mode is None:
        found.add("mode", "is required (IMPORT_MODE_ONGOING_SYNC or IMPORT_MODE_MANUAL_FILE)")
    _check_rows(request.rows, found)
    found.raise_if_any()
    assert mode is not None
    return RowBatchRequest(
        school_id=school_id,
        job_id=job_id,
        job_time=_job_time(request),
        mode=mode,
        sensitive_fields_update=request.sensitive_fields_update,
        dry_run=request.dry_run,
        rows=[_row(row) for row in request.rows],
        full_roster=request.full_roster,
    )


def response_to_proto(results: Sequence[RowResult]) -> pb.ApplyStudentRowsResponse:
    """Built in place with ``add()``: messages handed to a constructor in a list are copied, which
    cost as much again (a created row carries six or seven changes)."""
    response = pb.ApplyStudentRowsResponse()
    add = response.results.add
    for r in results:
        result = add(
            row_number=r.row_number,
            outcome=_OUTCOMES[r.outcome],
            approved=r.approved,
            user_id=r.user_id or "",
            reason=r.reason.value if r.reason else "",
            message=r.message,
        )
        if r.changes:
            add_change = result.changes.add
            for field, old, new in r.changes:
                add_change(field=field, old_value=old, new_value=new)
    return response


def _check_rows(rows: Sequence[rows_pb.StudentRow], found: Violations) -> None:
    if not 1 <= len(rows) <= MAX_ROWS:
        found.add("rows", f"must hold 1..{MAX_ROWS} rows (got {len(rows)})")
        return
    seen: set[int] = set()
    for index, row in enumerate(rows):
        number = row.row_number
        if number < 1:
            found.add(f"rows[{index}].row_number", "must be 1 or more")
        elif number in seen:
            found.add(f"rows[{index}].row_number", f"repeats row {number} of this request")
        seen.add(number)


def _job_time(request: pb.ApplyStudentRowsRequest) -> datetime:
    if request.HasField("job_create_time"):
        return request.job_create_time.ToDatetime(tzinfo=UTC)
    return datetime.now(UTC)


def _row(row: rows_pb.StudentRow) -> IncomingRow:
    return IncomingRow(
        row.row_number,
        row.username,
        row.email_address,
        row.first_name,
        row.last_name,
        row.auth_identifier,
        dict(row.extra) if row.extra else _NO_EXTRA,
        row.status,
    )
