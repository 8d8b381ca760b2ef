"""ApplyStudentRows request/response conversion and the checks of the request's envelope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import timestamp_pb2

from identity_service.adapters.grpc.student_file_convert import request_from_proto, response_to_proto
from identity_service.domain.student_file import ImportMode, RowOutcome, RowReason, RowResult
from shared.errors import RollcallError
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb

SCHOOL = "11111111-1111-1111-1111-111111111111"


def _request(**fields: object) -> pb.ApplyStudentRowsRequest:
    values: dict[str, object] = {
        "school_id": SCHOOL,
        "job_id": "job-1",
        "mode": rows_pb.IMPORT_MODE_MANUAL_FILE,
        "rows": [rows_pb.StudentRow(row_number=1, username="ann", email_address="a@u.edu", extra={"k": "v"})],
    }
    values.update(fields)
    return pb.ApplyStudentRowsRequest(**values)  # type: ignore[arg-type]


def _violations(request: pb.ApplyStudentRowsRequest) -> list[str]:
    with pytest.raises(RollcallError) as caught:
        request_from_proto(request)
    return [v.field for v in caught.value.violations]


def test_a_good_request_becomes_plain_values() -> None:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime(2030, 1, 2, tzinfo=UTC))
    request = request_from_proto(_request(job_create_time=stamp, dry_run=True, sensitive_fields_update=True))
    assert (request.school_id, request.job_id, request.mode) == (SCHOOL, "job-1", ImportMode.MANUAL_FILE)
    assert (request.dry_run, request.sensitive_fields_update) == (True, True)
    assert request.job_time == datetime(2030, 1, 2, tzinfo=UTC)
    assert (request.rows[0].username, dict(request.rows[0].extra)) == ("ann", {"k": "v"})


def test_a_missing_job_time_is_now() -> None:
    before = datetime.now(UTC)
    assert request_from_proto(_request()).job_time >= before


def test_the_envelope_is_checked_field_by_field() -> None:
    assert _violations(_request(school_id="nope", job_id="", mode=0, rows=[])) == [
        "school_id",
        "job_id",
        "mode",
        "rows",
    ]
    assert _violations(_request(job_id="j" * 129)) == ["job_id"]
    too_many = [rows_pb.StudentRow(row_number=n + 1) for n in range(1001)]
    assert _violations(_request(rows=too_many)) == ["rows"]


def test_row_numbers_must_be_positive_and_distinct() -> None:
    rows = [rows_pb.StudentRow(row_number=n) for n in (1, 0, 2, 1)]
    assert _violations(_request(rows=rows)) == ["rows[1].row_number", "rows[3].row_number"]


def test_results_keep_their_order_and_fields() -> None:
    reply = response_to_proto(
        [
            RowResult(2, RowOutcome.SKIPPED, False, "u2", RowReason.SUPERSEDED, "later"),
            RowResult(1, RowOutcome.CREATED, False, "u1", None, "student created"),
        ]
    )
    assert [(r.row_number, r.outcome, r.user_id, r.reason) for r in reply.results] == [
        (2, rows_pb.ROW_OUTCOME_SKIPPED, "u2", "SUPERSEDED"),
        (1, rows_pb.ROW_OUTCOME_CREATED, "u1", ""),
    ]
