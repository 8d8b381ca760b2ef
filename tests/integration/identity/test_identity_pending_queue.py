"""The pending-student queue, told as the seed story: a loaded student signs up again with a personal
address; staff find the loaded account among the duplicate candidates, then approve, decline, delete."""

from __future__ import annotations

import uuid
from typing import Any

import grpc

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity.identity_support import (
    Campus,
    IdentityClient,
    invalid,
    not_found,
    not_staff,
    refused,
    unique,
)


async def _pending(identity: IdentityClient, campus: Campus, **fields: Any) -> pb.ListPendingStudentsResponse:
    request = pb.ListPendingStudentsRequest(school_id=campus.school.id, **fields)
    return await identity.stub.ListPendingStudents(request, metadata=campus.staff_md)


async def test_seed_story(identity: IdentityClient, campus: Campus) -> None:
    loaded = await identity.new_student(
        campus, email=campus.email("ann.lee"), first_name="Ann", last_name="Lee", auth_identifier="S123"
    )
    personal = f"ann.lee@{unique('mail')}.com"
    pending = await identity.sign_up(campus, email=personal, first_name="Ann", last_name="Lee")
    assert [u.id for u in (await _pending(identity, campus)).users] == [pending.id]
    found = await identity.stub.FindDuplicateCandidates(
        pb.FindDuplicateCandidatesRequest(user_id=pending.id), metadata=campus.staff_md
    )
    best = found.candidates[0]
    assert best.user.id == loaded.id and 0 < best.score <= 1
    assert set(best.reasons) == {pb.MATCH_REASON_SAME_NAME, pb.MATCH_REASON_SAME_EMAIL_LOCAL_PART}
    approved = await identity.stub.ApproveStudent(
        pb.ApproveStudentRequest(user_id=pending.id, note="alumna, checked"), metadata=campus.staff_md
    )
    assert approved.status == res.USER_STATUS_ACTIVE and approved.etag != pending.etag
    assert (await _pending(identity, campus)).users == []
    event = await identity.db.fetchrow(
        "SELECT actor_id::text, details::text FROM audit_events WHERE user_id = $1 AND action = $2",
        pending.id,
        "user.approved",
    )
    assert event["actor_id"] == campus.staff.id and "alumna, checked" in event["details"]


async def test_oldest_first_and_paged(identity: IdentityClient, campus: Campus) -> None:
    signed = [await identity.sign_up(campus) for _ in range(5)]
    first = await _pending(identity, campus, page_size=3)
    second = await _pending(identity, campus, page_size=3, page_token=first.next_page_token)
    assert [u.id for u in [*first.users, *second.users]] == [u.id for u in signed]
    assert first.next_page_token and not second.next_page_token


async def test_list_errors(identity: IdentityClient, campus: Campus) -> None:
    other = await identity.new_campus()
    await invalid(_pending(identity, campus, page_size=501), "page_size")
    await invalid(_pending(identity, campus, page_token="eyJrIjoicGVuZGluZyJ9"), "page_token")
    request = pb.ListPendingStudentsRequest(school_id=campus.school.id)
    await not_staff(identity.stub.ListPendingStudents(request, metadata=other.staff_md))
    unknown = pb.ListPendingStudentsRequest(school_id=str(uuid.uuid4()))
    await not_found(identity.stub.ListPendingStudents(unknown, metadata=identity.admin), "SCHOOL_NOT_FOUND")
    await invalid(
        identity.stub.ListPendingStudents(pb.ListPendingStudentsRequest(), metadata=identity.admin),
        "school_id",
    )


async def test_decline_keeps_the_email_until_deleted(identity: IdentityClient, campus: Campus) -> None:
    pending = await identity.sign_up(campus)
    declined = await identity.stub.DeclineStudent(
        pb.DeclineStudentRequest(user_id=pending.id, reason="not known to us"), metadata=campus.staff_md
    )
    assert declined.status == res.USER_STATUS_DECLINED
    await refused(
        identity.sign_up(campus, email=pending.email), grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN"
    )
    await identity.stub.DeletePendingStudent(
        pb.DeletePendingStudentRequest(user_id=pending.id), metadata=campus.staff_md
    )
    again = await identity.sign_up(campus, email=pending.email)
    assert again.id != pending.id


async def test_delete_frees_the_email_at_once(identity: IdentityClient, campus: Campus) -> None:
    pending = await identity.sign_up(campus)
    await identity.stub.DeletePendingStudent(
        pb.DeletePendingStudentRequest(user_id=pending.id), metadata=campus.staff_md
    )
    await not_found(
        identity.stub.GetUser(pb.GetUserRequest(id=pending.id), metadata=identity.admin), "USER_NOT_FOUND"
    )
    reused = await identity.new_user(res.USER_TYPE_EMPLOYER, email=pending.email)
    assert reused.email == pending.email
    actions = await identity.db.fetch(
        "SELECT action FROM audit_events WHERE user_id = $1 ORDER BY id", pending.id
    )
    assert [r["action"] for r in actions] == ["user.signed_up", "user.deleted"]


async def test_not_pending(identity: IdentityClient, campus: Campus) -> None:
    active = await identity.new_student(campus)
    pending = await identity.sign_up(campus)
    await identity.stub.DeclineStudent(pb.DeclineStudentRequest(user_id=pending.id), metadata=campus.staff_md)
    md = campus.staff_md
    for user_id in (active.id, pending.id, campus.staff.id):
        for call in (
            identity.stub.ApproveStudent(pb.ApproveStudentRequest(user_id=user_id), metadata=md),
            identity.stub.DeclineStudent(pb.DeclineStudentRequest(user_id=user_id), metadata=md),
        ):
            await refused(call, grpc.StatusCode.FAILED_PRECONDITION, "NOT_PENDING")
    for user_id in (active.id, campus.staff.id):
        delete = identity.stub.DeletePendingStudent(
            pb.DeletePendingStudentRequest(user_id=user_id), metadata=md
        )
        await refused(delete, grpc.StatusCode.FAILED_PRECONDITION, "NOT_PENDING")
    assert await identity.users_with_email(active.email) == 1


async def test_decisions_refused(identity: IdentityClient, campus: Campus) -> None:
    pending = await identity.sign_up(campus)
    other = await identity.new_campus()
    stub = identity.stub
    for md in (other.staff_md, identity.md("platform"), identity.md("platform", pending.id)):
        await not_staff(stub.ApproveStudent(pb.ApproveStudentRequest(user_id=pending.id), metadata=md))
        await not_staff(stub.DeclineStudent(pb.DeclineStudentRequest(user_id=pending.id), metadata=md))
        await not_staff(
            stub.DeletePendingStudent(pb.DeletePendingStudentRequest(user_id=pending.id), metadata=md)
        )
    missing = str(uuid.uuid4())
    md = campus.staff_md
    await not_found(
        stub.ApproveStudent(pb.ApproveStudentRequest(user_id=missing), metadata=md), "USER_NOT_FOUND"
    )
    await not_found(
        stub.DeclineStudent(pb.DeclineStudentRequest(user_id=missing), metadata=md), "USER_NOT_FOUND"
    )
    await not_found(
        stub.DeletePendingStudent(pb.DeletePendingStudentRequest(user_id=missing), metadata=md),
        "USER_NOT_FOUND",
    )
    await invalid(
        stub.ApproveStudent(pb.ApproveStudentRequest(user_id="1", note="n" * 1001), metadata=md),
        "user_id",
        "note",
    )
    await invalid(
        stub.DeclineStudent(pb.DeclineStudentRequest(user_id=pending.id, reason="\x00"), metadata=md),
        "reason",
    )
    await invalid(stub.DeletePendingStudent(pb.DeletePendingStudentRequest(), metadata=md), "user_id")
    still = await stub.GetUser(pb.GetUserRequest(id=pending.id), metadata=identity.admin)
    assert still == pending and await identity.audit_count(user_id=pending.id) == 1
