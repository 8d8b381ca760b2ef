"""Every IdentityService RPC refuses a missing or unknown token, every role api.md does not list,
and staff of another school — with valid requests, so only who is calling can be the reason.

The expected table is written here from api.md's "who" column, not imported from the code, so a
drift between the role table and the contract fails this test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows
from tests.integration.identity.identity_support import Campus, IdentityClient, refused, unique

ADMIN, PLATFORM, IMPORTER = "admin", "platform", "importer"
# api.md: admin everything; importer ApplyStudentRows and reads; platform the web app's calls.
ALLOWED: dict[str, set[str]] = {
    "CreateSchool": {ADMIN},
    "GetSchool": {ADMIN, PLATFORM, IMPORTER},
    "UpdateSchool": {ADMIN, PLATFORM},
    "CreateUser": {ADMIN, PLATFORM},
    "SignUpStudent": {ADMIN, PLATFORM},
    "ResolveSignIn": {ADMIN, PLATFORM},
    "Authenticate": {ADMIN, PLATFORM},
    "ResolveSsoSignIn": {ADMIN, PLATFORM},
    "GetUser": {ADMIN, PLATFORM, IMPORTER},
    "LookupUserByEmail": {ADMIN, PLATFORM, IMPORTER},
    "SearchUsers": {ADMIN, PLATFORM},
    "ListPendingStudents": {ADMIN, PLATFORM},
    "FindDuplicateCandidates": {ADMIN, PLATFORM},
    "ApproveStudent": {ADMIN, PLATFORM},
    "DeclineStudent": {ADMIN, PLATFORM},
    "BatchApproveStudents": {ADMIN, PLATFORM},
    "BatchDeclineStudents": {ADMIN, PLATFORM},
    "DeletePendingStudent": {ADMIN, PLATFORM},
    "MergePendingStudent": {ADMIN, PLATFORM},
    "RequestEmailChange": {ADMIN, PLATFORM},
    "ConfirmEmailChange": {ADMIN, PLATFORM},
    "CancelEmailChange": {ADMIN, PLATFORM},
    "SetFileUpdates": {ADMIN, PLATFORM},
    "ApplyStudentRows": {ADMIN, IMPORTER},
    "ArchiveStudentsNotInJob": {ADMIN, IMPORTER},
    "UndoStudentRows": {ADMIN, IMPORTER},
    "GetImportGuard": {ADMIN, IMPORTER},
    "ListAuditEvents": {ADMIN, PLATFORM},
}
# RPCs whose platform caller must be ACTIVE STAFF of the school concerned.
STAFF_OF_SCHOOL = {
    "UpdateSchool",
    "BatchApproveStudents",
    "BatchDeclineStudents",
    "CreateUser",
    "GetUser",
    "LookupUserByEmail",
    "SearchUsers",
    "ListPendingStudents",
    "FindDuplicateCandidates",
    "ApproveStudent",
    "DeclineStudent",
    "DeletePendingStudent",
    "MergePendingStudent",
    "RequestEmailChange",
    "CancelEmailChange",
    "SetFileUpdates",
    "ListAuditEvents",
}


@dataclass(frozen=True)
class World:
    home: Campus
    other: Campus
    pending: res.User
    student: res.User


Build = Callable[[World], Any]
REQUESTS: dict[str, Build] = {
    "CreateSchool": lambda w: pb.CreateSchoolRequest(
        name=unique("School "), email_domains=[f"{unique()}.edu"]
    ),
    "GetSchool": lambda w: pb.GetSchoolRequest(id=w.home.school.id),
    "UpdateSchool": lambda w: pb.UpdateSchoolRequest(
        school=res.School(id=w.home.school.id, notify_emails=["careers@uni.example"]),
        update_mask=field_mask_pb2.FieldMask(paths=["notify_emails"]),
    ),
    "CreateUser": lambda w: pb.CreateUserRequest(
        user_type=res.USER_TYPE_STUDENT, school_id=w.home.school.id, email=w.home.email()
    ),
    "SignUpStudent": lambda w: pb.SignUpStudentRequest(
        school_id=w.home.school.id,
        email=f"{unique()}@gmail.com",
        first_name="Ann",
        last_name="Lee",
        password="correct horse battery",
    ),
    "ResolveSignIn": lambda w: pb.ResolveSignInRequest(email="nobody@gmail.com", school_id=w.home.school.id),
    "Authenticate": lambda w: pb.AuthenticateRequest(email=w.pending.email, password="correct horse battery"),
    "ResolveSsoSignIn": lambda w: pb.ResolveSsoSignInRequest(school_id=w.home.school.id, subject="nobody"),
    "GetUser": lambda w: pb.GetUserRequest(id=w.student.id),
    "LookupUserByEmail": lambda w: pb.LookupUserByEmailRequest(email=w.student.email),
    "SearchUsers": lambda w: pb.SearchUsersRequest(school_id=w.home.school.id, query="a"),
    "ListPendingStudents": lambda w: pb.ListPendingStudentsRequest(school_id=w.home.school.id),
    "FindDuplicateCandidates": lambda w: pb.FindDuplicateCandidatesRequest(user_id=w.pending.id),
    "ApproveStudent": lambda w: pb.ApproveStudentRequest(user_id=w.pending.id),
    "DeclineStudent": lambda w: pb.DeclineStudentRequest(user_id=w.pending.id),
    "BatchApproveStudents": lambda w: pb.BatchApproveStudentsRequest(
        school_id=w.home.school.id, user_ids=[w.pending.id]
    ),
    "BatchDeclineStudents": lambda w: pb.BatchDeclineStudentsRequest(
        school_id=w.home.school.id, user_ids=[w.pending.id]
    ),
    "DeletePendingStudent": lambda w: pb.DeletePendingStudentRequest(user_id=w.pending.id),
    "MergePendingStudent": lambda w: pb.MergePendingStudentRequest(
        pending_user_id=w.pending.id, existing_user_id=w.student.id
    ),
    "RequestEmailChange": lambda w: pb.RequestEmailChangeRequest(
        user_id=w.student.id, new_email=f"{unique()}@gmail.com", disable_file_updates=True
    ),
    "ConfirmEmailChange": lambda w: pb.ConfirmEmailChangeRequest(user_id=w.student.id, code="ABCDEFGH"),
    "CancelEmailChange": lambda w: pb.CancelEmailChangeRequest(user_id=w.student.id),
    "SetFileUpdates": lambda w: pb.SetFileUpdatesRequest(user_id=w.student.id, enabled=False),
    "ApplyStudentRows": lambda w: pb.ApplyStudentRowsRequest(
        school_id=w.home.school.id,
        job_id=unique("job-"),
        mode=rows.IMPORT_MODE_ONGOING_SYNC,
        rows=[rows.StudentRow(row_number=1, username=unique("u"), email_address=w.home.email())],
        job_create_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
    ),
    "ListAuditEvents": lambda w: pb.ListAuditEventsRequest(school_id=w.home.school.id),
    # A dry run: a real sweep of a job that named nobody would archive the home school's file students.
    "ArchiveStudentsNotInJob": lambda w: pb.ArchiveStudentsNotInJobRequest(
        school_id=w.home.school.id, job_id=unique("job-"), dry_run=True
    ),
    "UndoStudentRows": lambda w: pb.UndoStudentRowsRequest(
        school_id=w.home.school.id, job_id=unique("job-"), undo_job_id=unique("undo-")
    ),
    "GetImportGuard": lambda w: pb.GetImportGuardRequest(school_id=w.home.school.id),
}


def test_the_matrix_covers_every_rpc_of_the_service() -> None:
    declared = {m.name for m in pb.DESCRIPTOR.services_by_name["IdentityService"].methods}
    assert declared == set(ALLOWED) == set(REQUESTS)
    assert set(STAFF_OF_SCHOOL) <= declared


@pytest.fixture(scope="module")
async def world(identity: IdentityClient) -> World:
    home, other = await identity.new_campus(), await identity.new_campus()
    pending = await identity.sign_up(home)
    student = await identity.new_student(home, first_name="Ann", last_name="Lee")
    return World(home, other, pending, student)


def _call(identity: IdentityClient, method: str, request: Any, metadata: Any) -> Any:
    return getattr(identity.stub, method)(request, metadata=metadata, timeout=10)


async def _state(identity: IdentityClient, w: World) -> tuple[int, int]:
    users = await identity.count("SELECT count(*) FROM users WHERE school_id = $1", w.home.school.id)
    events = await identity.count("SELECT count(*) FROM audit_events")
    return users, events


@pytest.mark.parametrize("method", sorted(ALLOWED))
async def test_no_token_is_unauthenticated(identity: IdentityClient, world: World, method: str) -> None:
    await refused(
        _call(identity, method, REQUESTS[method](world), ()),
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )


@pytest.mark.parametrize("method", sorted(ALLOWED))
async def test_unknown_token_is_unauthenticated(identity: IdentityClient, world: World, method: str) -> None:
    metadata = (("authorization", "Bearer not-a-real-token-at-all"),)
    await refused(
        _call(identity, method, REQUESTS[method](world), metadata),
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )


DENIED = [
    (m, role) for m in sorted(ALLOWED) for role in (ADMIN, PLATFORM, IMPORTER) if role not in ALLOWED[m]
]


@pytest.mark.parametrize(("method", "role"), DENIED)
async def test_roles_not_listed_are_refused(
    identity: IdentityClient, world: World, method: str, role: str
) -> None:
    before = await _state(identity, world)
    actor = world.home.staff.id if role == PLATFORM else None
    await refused(
        _call(identity, method, REQUESTS[method](world), identity.md(role, actor)),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
    assert await _state(identity, world) == before


@pytest.mark.parametrize("method", sorted(STAFF_OF_SCHOOL))
async def test_staff_of_another_school_is_refused(
    identity: IdentityClient, world: World, method: str
) -> None:
    before = await _state(identity, world)
    await refused(
        _call(identity, method, REQUESTS[method](world), world.other.staff_md),
        grpc.StatusCode.PERMISSION_DENIED,
        "NOT_STAFF_OF_SCHOOL",
    )
    assert await _state(identity, world) == before


@pytest.mark.parametrize("method", sorted(STAFF_OF_SCHOOL))
async def test_platform_without_an_actor_is_refused(
    identity: IdentityClient, world: World, method: str
) -> None:
    await refused(
        _call(identity, method, REQUESTS[method](world), identity.md(PLATFORM)),
        grpc.StatusCode.PERMISSION_DENIED,
        "NOT_STAFF_OF_SCHOOL",
    )
