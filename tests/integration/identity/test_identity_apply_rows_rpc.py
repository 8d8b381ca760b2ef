"""ApplyStudentRows over gRPC: the importer's batch in, one result per row out, in request order."""

from __future__ import annotations

import uuid

import grpc
from google.protobuf import timestamp_pb2

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows
from tests.integration.identity.identity_support import (
    Campus,
    IdentityClient,
    invalid,
    not_found,
    refused,
    unique,
)

NOW = timestamp_pb2.Timestamp(seconds=1_800_000_000)


def _request(campus: Campus, batch: list[rows.StudentRow], **fields: object) -> pb.ApplyStudentRowsRequest:
    return pb.ApplyStudentRowsRequest(
        school_id=campus.school.id,
        job_id=unique("job-"),
        mode=rows.IMPORT_MODE_ONGOING_SYNC,
        rows=batch,
        job_create_time=NOW,
        **fields,  # type: ignore[arg-type]
    )


async def test_results_come_back_one_per_row_in_request_order(
    identity: IdentityClient, campus: Campus
) -> None:
    pending = await identity.sign_up(campus, email=campus.email("pat"))
    batch = [
        rows.StudentRow(row_number=3, username="new3", email_address=campus.email("new3"), first_name="N"),
        rows.StudentRow(row_number=1, username="pat", email_address=pending.email),
        rows.StudentRow(row_number=2, username="", email_address="not-an-email"),
        rows.StudentRow(row_number=4, username=pending.email, email_address=pending.email, first_name="Pat"),
    ]
    reply = await identity.stub.ApplyStudentRows(_request(campus, batch), metadata=identity.md("importer"))

    assert [r.row_number for r in reply.results] == [3, 1, 2, 4]
    by_row = {r.row_number: r for r in reply.results}
    assert by_row[3].outcome == rows.ROW_OUTCOME_CREATED and by_row[3].user_id
    assert (by_row[1].outcome, by_row[1].reason) == (rows.ROW_OUTCOME_FAILED, "SENSITIVE_FIELDS_REQUIRED")
    assert by_row[1].message == "attempting to update sensitive fields without sensitive fields setting"
    assert (by_row[2].outcome, by_row[2].reason) == (rows.ROW_OUTCOME_FAILED, "INVALID_ROW")
    assert "username" in by_row[2].message and "email_address" in by_row[2].message
    assert by_row[4].outcome == rows.ROW_OUTCOME_UPDATED and by_row[4].approved
    approved = await identity.stub.GetUser(pb.GetUserRequest(id=pending.id), metadata=identity.admin)
    assert approved.status == res.USER_STATUS_ACTIVE


async def test_an_oversized_or_malformed_batch_is_refused_whole(
    identity: IdentityClient, campus: Campus
) -> None:
    many = [
        rows.StudentRow(row_number=n, username=f"u{n}", email_address=campus.email(f"u{n}"))
        for n in range(1, 1002)
    ]
    await invalid(
        identity.stub.ApplyStudentRows(_request(campus, many), metadata=identity.md("importer")), "rows"
    )
    no_mode = _request(campus, many[:1])
    no_mode.mode = rows.IMPORT_MODE_UNSPECIFIED
    await invalid(identity.stub.ApplyStudentRows(no_mode, metadata=identity.md("importer")), "mode")
    assert await identity.count("SELECT count(*) FROM users WHERE school_id = $1", campus.school.id) == 1


async def test_an_unknown_school_is_not_found(identity: IdentityClient, campus: Campus) -> None:
    request = _request(campus, [rows.StudentRow(row_number=1, username="a", email_address=campus.email("a"))])
    request.school_id = str(uuid.uuid4())
    await not_found(
        identity.stub.ApplyStudentRows(request, metadata=identity.md("importer")), "SCHOOL_NOT_FOUND"
    )


async def test_platform_may_not_apply_rows(identity: IdentityClient, campus: Campus) -> None:
    request = _request(campus, [rows.StudentRow(row_number=1, username="a", email_address=campus.email("a"))])
    await refused(
        identity.stub.ApplyStudentRows(request, metadata=campus.staff_md),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
