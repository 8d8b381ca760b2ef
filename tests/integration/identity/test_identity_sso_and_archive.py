"""Issue 9 over gRPC: ResolveSsoSignIn, archive rows and restores through ApplyStudentRows, and what
an archived student's account still answers (GetUser, LookupUserByEmail, SearchUsers by status) and
refuses (Authenticate, SSO)."""

from __future__ import annotations

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

_JOB_TIMES = iter(range(1_800_000_000, 1_900_000_000))  # each call a later job (the ordering guard)
PASSWORD = "correct horse battery"


async def _apply(identity: IdentityClient, campus: Campus, *batch: rows.StudentRow) -> list[rows.RowResult]:
    request = pb.ApplyStudentRowsRequest(
        school_id=campus.school.id,
        job_id=unique("job-"),
        mode=rows.IMPORT_MODE_ONGOING_SYNC,
        rows=list(batch),
        job_create_time=timestamp_pb2.Timestamp(seconds=next(_JOB_TIMES)),
    )
    return list((await identity.stub.ApplyStudentRows(request, metadata=identity.md("importer"))).results)


def _sso(identity: IdentityClient, school_id: str, subject: str) -> object:
    request = pb.ResolveSsoSignInRequest(school_id=school_id, subject=subject)
    return identity.stub.ResolveSsoSignIn(request, metadata=identity.md("platform"))


def _authenticate(identity: IdentityClient, email: str) -> object:
    return identity.stub.Authenticate(
        pb.AuthenticateRequest(email=email, password=PASSWORD), metadata=identity.md("platform")
    )


async def test_a_file_student_signs_in_by_subject_until_archived_and_again_once_restored(
    identity: IdentityClient,
) -> None:
    campus = await identity.new_campus(sso=True)
    me = await identity.sign_up(campus, email=campus.email("kim"), password=PASSWORD)
    [approved] = await _apply(
        identity,
        campus,
        rows.StudentRow(row_number=1, username=me.email, email_address=me.email, auth_identifier="SSO-Kim"),
    )
    assert approved.approved and approved.user_id == me.id
    assert (await _sso(identity, campus.school.id, "sso-KIM")).id == me.id  # type: ignore[attr-defined]
    assert (await _authenticate(identity, me.email)).id == me.id  # type: ignore[attr-defined]

    [archived] = await _apply(
        identity,
        campus,
        rows.StudentRow(row_number=1, username=me.email, email_address=me.email, status="archived"),
    )
    assert (archived.outcome, archived.message) == (rows.ROW_OUTCOME_ARCHIVED, "archived")
    assert [(c.field, c.old_value, c.new_value) for c in archived.changes] == [
        ("status", "ACTIVE", "ARCHIVED")
    ]
    await refused(
        _sso(identity, campus.school.id, "SSO-Kim"), grpc.StatusCode.FAILED_PRECONDITION, "USER_ARCHIVED"
    )
    await refused(_authenticate(identity, me.email), grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    shown = await identity.stub.GetUser(pb.GetUserRequest(id=me.id), metadata=campus.staff_md)
    assert shown.status == res.USER_STATUS_ARCHIVED
    looked_up = await identity.stub.LookupUserByEmail(
        pb.LookupUserByEmailRequest(email=me.email), metadata=identity.admin
    )
    assert looked_up.status == res.USER_STATUS_ARCHIVED
    found = await identity.stub.SearchUsers(
        pb.SearchUsersRequest(school_id=campus.school.id, statuses=[res.USER_STATUS_ARCHIVED]),
        metadata=campus.staff_md,
    )
    assert [u.id for u in found.users] == [me.id]
    taken = identity.sign_up(campus, email=me.email.upper())
    await refused(taken, grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN")  # the email stays taken
    events = await identity.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(school_id=campus.school.id, user_id=me.id), metadata=campus.staff_md
    )
    assert events.events[0].action == "user.archived_by_file"

    [restored] = await _apply(
        identity,
        campus,
        rows.StudentRow(row_number=1, username=me.email, email_address=me.email, status="active"),
    )
    assert (restored.outcome, restored.message) == (rows.ROW_OUTCOME_UPDATED, "unarchived")
    assert (await _sso(identity, campus.school.id, "sso-kim")).id == me.id  # type: ignore[attr-defined]
    assert (await _authenticate(identity, me.email)).id == me.id  # type: ignore[attr-defined]


async def test_resolve_sso_sign_in_refusals(identity: IdentityClient) -> None:
    campus = await identity.new_campus(sso=True)
    pending = await identity.sign_up(campus)
    await identity.db.execute(
        "UPDATE users SET auth_identifier = 'P-1', auth_identifier_key = 'p-1' WHERE id = $1", pending.id
    )
    await refused(
        _sso(identity, campus.school.id, "p-1"), grpc.StatusCode.FAILED_PRECONDITION, "USER_PENDING"
    )
    await identity.stub.DeclineStudent(pb.DeclineStudentRequest(user_id=pending.id), metadata=campus.staff_md)
    await refused(
        _sso(identity, campus.school.id, "P-1"), grpc.StatusCode.FAILED_PRECONDITION, "USER_DECLINED"
    )
    await not_found(_sso(identity, campus.school.id, "nobody"), "USER_NOT_FOUND")
    await not_found(_sso(identity, "00000000-0000-4000-8000-000000000000", "p-1"), "SCHOOL_NOT_FOUND")
    plain = await identity.new_campus(sso=False)
    await refused(
        _sso(identity, plain.school.id, "p-1"), grpc.StatusCode.FAILED_PRECONDITION, "SSO_NOT_ENABLED"
    )
    await invalid(_sso(identity, campus.school.id, ""), "subject")
    await invalid(_sso(identity, "not-an-id", "x"), "school_id")
    staff_call = identity.stub.ResolveSsoSignIn(
        pb.ResolveSsoSignInRequest(school_id=campus.school.id, subject="x"), metadata=identity.md("importer")
    )
    await refused(staff_call, grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


async def test_auth_identifiers_are_unique_per_school_by_key(identity: IdentityClient) -> None:
    campus = await identity.new_campus(sso=True)
    first = await identity.new_student(campus, auth_identifier="Ann.Lee")
    await refused(
        identity.new_student(campus, auth_identifier="ANN.LEE "),
        grpc.StatusCode.ALREADY_EXISTS,
        "AUTH_IDENTIFIER_TAKEN",
    )
    [row] = await _apply(
        identity,
        campus,
        rows.StudentRow(
            row_number=1, username="bo", email_address=campus.email("bo"), auth_identifier="ann.lee"
        ),
    )
    assert (row.outcome, row.reason) == (rows.ROW_OUTCOME_FAILED, "AUTH_IDENTIFIER_TAKEN")
    elsewhere = await identity.new_campus(sso=True)
    assert (await identity.new_student(elsewhere, auth_identifier="ann.lee")).id != first.id
    [bad] = await _apply(
        identity,
        campus,
        rows.StudentRow(row_number=1, username="cy", email_address=campus.email("cy"), status="gone"),
    )
    assert (bad.outcome, bad.reason) == (rows.ROW_OUTCOME_FAILED, "INVALID_ROW") and "status" in bad.message
