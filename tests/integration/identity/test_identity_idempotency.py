"""request_id idempotency across the mutating RPCs: same content → same answer, acted once."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf import empty_pb2

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from tests.integration.identity.identity_support import Campus, IdentityClient, invalid, refused, unique


async def test_approve_replays_the_first_answer(identity: IdentityClient, campus: Campus) -> None:
    pending = await identity.sign_up(campus)
    request = pb.ApproveStudentRequest(user_id=pending.id, note="ok", request_id=unique("r"))
    first = await identity.stub.ApproveStudent(request, metadata=campus.staff_md)
    again = await identity.stub.ApproveStudent(request, metadata=campus.staff_md)
    assert again == first  # not NOT_PENDING: the first answer, etag included
    assert await identity.audit_count(user_id=pending.id) == 2  # signed up, approved once
    other_note = pb.ApproveStudentRequest(user_id=pending.id, note="changed", request_id=request.request_id)
    await invalid(
        identity.stub.ApproveStudent(other_note, metadata=campus.staff_md), reason="REQUEST_ID_REUSED"
    )
    other_rpc = pb.DeclineStudentRequest(user_id=pending.id, request_id=request.request_id)
    await invalid(
        identity.stub.DeclineStudent(other_rpc, metadata=campus.staff_md), reason="REQUEST_ID_REUSED"
    )


async def test_delete_replays_and_concurrent_repeats_act_once(
    identity: IdentityClient, campus: Campus
) -> None:
    pending = await identity.sign_up(campus)
    request = pb.DeletePendingStudentRequest(user_id=pending.id, request_id=unique("r"))
    answers = await asyncio.gather(
        *(identity.stub.DeletePendingStudent(request, metadata=campus.staff_md) for _ in range(4))
    )
    assert answers == [empty_pb2.Empty()] * 4
    deleted = await identity.count(
        "SELECT count(*) FROM audit_events WHERE user_id = $1 AND action = 'user.deleted'", pending.id
    )
    assert deleted == 1
    someone_else = await identity.sign_up(campus)
    reused = pb.DeletePendingStudentRequest(user_id=someone_else.id, request_id=request.request_id)
    await invalid(
        identity.stub.DeletePendingStudent(reused, metadata=campus.staff_md), reason="REQUEST_ID_REUSED"
    )
    assert await identity.users_with_email(someone_else.email) == 1


async def test_keys_belong_to_one_actor(identity: IdentityClient, campus: Campus) -> None:
    """Two people of one client reusing a request_id never see each other's answers."""
    colleague = await identity.new_user(
        2, campus.school.id, email=campus.email(), first_name="Cat", last_name="Colleague"
    )
    pending = await identity.sign_up(campus)
    request = pb.DeclineStudentRequest(user_id=pending.id, request_id=unique("r"))
    await identity.stub.DeclineStudent(request, metadata=campus.staff_md)
    as_colleague = identity.md("platform", colleague.id)
    await invalid(identity.stub.DeclineStudent(request, metadata=as_colleague), reason="REQUEST_ID_REUSED")


async def test_keys_belong_to_one_client(identity: IdentityClient, campus: Campus) -> None:
    request_id = unique("r")
    mine = await identity.stub.SetFileUpdates(
        pb.SetFileUpdatesRequest(user_id=(await identity.new_student(campus)).id, request_id=request_id),
        metadata=campus.staff_md,
    )
    theirs = await identity.stub.SetFileUpdates(
        pb.SetFileUpdatesRequest(user_id=(await identity.new_student(campus)).id, request_id=request_id),
        metadata=identity.admin,
    )
    assert mine.id != theirs.id and mine.file_updates_disabled and theirs.file_updates_disabled


async def test_failures_are_not_remembered(identity: IdentityClient, campus: Campus) -> None:
    holder = await identity.sign_up(campus)
    request_id = unique("r")
    await refused(
        identity.sign_up(campus, email=holder.email, request_id=request_id),
        grpc.StatusCode.ALREADY_EXISTS,
        "EMAIL_TAKEN",
    )
    delete = pb.DeletePendingStudentRequest(user_id=holder.id)
    await identity.stub.DeletePendingStudent(delete, metadata=campus.staff_md)
    retried = await identity.sign_up(campus, email=holder.email, request_id=request_id)
    assert retried.email == holder.email and retried.id != holder.id
