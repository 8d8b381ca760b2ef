"""UndoStudentRows request/response ↔ service values, with the checks of the request's shape."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from identity_service.adapters.grpc.student_file_convert import JOB_ID_MAX, response_to_proto
from identity_service.domain.fields import Violations, unreadable_character_problem
from identity_service.domain.student_file import RowResult
from identity_service.service.inputs import required_id
from identity_service.service.undo import UndoRequest
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb


def undo_request_from_proto(request: pb.UndoStudentRowsRequest) -> UndoRequest:
    """Plain values; raises INVALID_ARGUMENT naming every bad field."""
    found = Violations()
    school_id = required_id(request.school_id, "school_id", found)
    job_id = _job_id(request.job_id, "job_id", found)
    undo_job_id = _job_id(request.undo_job_id, "undo_job_id", found)
    found.raise_if_any()
    when = (
        request.undo_job_create_time.ToDatetime(tzinfo=UTC)
        if request.HasField("undo_job_create_time")
        else datetime.now(UTC)
    )
    return UndoRequest(school_id, job_id, undo_job_id, when)


def undo_response_to_proto(results: Sequence[RowResult]) -> pb.UndoStudentRowsResponse:
    return pb.UndoStudentRowsResponse(results=response_to_proto(results).results)


def _job_id(value: str, name: str, found: Violations) -> str:
    job_id = value.strip()
    if not 1 <= len(job_id) <= JOB_ID_MAX:
        found.add(name, f"is required (1..{JOB_ID_MAX} characters)")
    elif (problem := unreadable_character_problem(job_id)) is not None:
        found.add(name, problem)
    return job_id
