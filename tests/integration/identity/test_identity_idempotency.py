"""request_id idempotency across the mutating RPCs: same content → same answer, acted once."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf import empty_pb2

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
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
    """Two staff members of one platform client pick the same request_id for different requests:
    each gets their own result; each repeat gets its own first answer; other content under one's
    own key is a reuse."""
    colleague = await identity.new_user(
        2, campus.school.id, email=campus.email(), first_name="Cat", last_name="Colleague"
    )
    as_colleague = identity.md("platform", colleague.id)
    mine_pending, theirs_pending = await identity.sign_up(campus), await identity.sign_up(campus)
    request_id = unique("r")
    mine = pb.ApproveStudentRequest(user_id=mine_pending.id, note="mine", request_id=request_id)
    theirs = pb.DeclineStudentRequest(user_id=theirs_pending.id, reason="theirs", request_id=request_id)

    approved = await identity.stub.ApproveStudent(mine, metadata=campus.staff_md)
    declined = await identity.stub.DeclineStudent(theirs, metadata=as_colleague)
    assert (approved.id, approved.status) == (mine_pending.id, res.USER_STATUS_ACTIVE)
    assert (declined.id, declined.status) == (theirs_pending.id, res.USER_STATUS_DECLINED)

    assert await identity.stub.ApproveStudent(mine, metadata=campus.staff_md) == approved
    assert await identity.stub.DeclineStudent(theirs, metadata=as_colleague) == declined
    assert await identity.audit_count(user_id=mine_pending.id) == 2  # signed up, approved once
    assert await identity.audit_count(user_id=theirs_pending.id) == 2

    other_note = pb.ApproveStudentRequest(user_id=mine_pending.id, note="changed", request_id=request_id)
    await invalid(
        identity.stub.ApproveStudent(other_note, metadata=campus.staff_md), reason="REQUEST_ID_REUSED"
    )
    await invalid(identity.stub.ApproveStudent(mine, metadata=as_colleague), reason="REQUEST_ID_REUSED")
    rows = await identity.db.fetch(
        "SELECT actor FROM idempotency_answers WHERE client = 'web' AND request_id = $1 ORDER BY actor",
        request_id,
    )
    assert [r["actor"] for r in rows] == sorted([campus.staff.id, colleague.id])


async def test_concurrent_repeats_of_two_actors_each_act_once(
    identity: IdentityClient, campus: Campus
) -> None:
    colleague = await identity.new_user(
        2, campus.school.id, email=campus.email(), first_name="Cat", last_name="Colleague"
    )
    as_colleague = identity.md("platform", colleague.id)
    request_id = unique("r")
    mine = pb.DeletePendingStudentRequest(user_id=(await identity.sign_up(campus)).id, request_id=request_id)
    theirs = pb.DeletePendingStudentRequest(
        user_id=(await identity.sign_up(campus)).id, request_id=request_id
    )
    answers = await asyncio.gather(
        *(identity.stub.DeletePendingStudent(mine, metadata=campus.staff_md) for _ in range(3)),
        *(identity.stub.DeletePendingStudent(theirs, metadata=as_colleague) for _ in range(3)),
    )
    assert answers == [empty_pb2.Empty()] * 6
    for user_id in (mine.user_id, theirs.user_id):
        deleted = await identity.count(
            "SELECT count(*) FROM audit_events WHERE user_id = $1 AND action = 'user.deleted'", user_id
        )
        assert deleted == 1


async def test_calls_without_an_actor_keep_one_key_per_client(
    identity: IdentityClient, campus: Campus
) -> None:
    """Sign-up (platform, no actor) and admin calls: (client, request_id) as before."""
    request_id = unique("r")
    first = await identity.sign_up(campus, request_id=request_id, email=f"{unique('me')}@gmail.com")
    assert await identity.sign_up(campus, request_id=request_id, email=first.email) == first
    await invalid(
        identity.sign_up(campus, request_id=request_id, email=f"{unique('me')}@gmail.com"),
        reason="REQUEST_ID_REUSED",
    )
    stored = await identity.db.fetchval(
        "SELECT actor FROM idempotency_answers WHERE client = 'web' AND request_id = $1", request_id
    )
    assert stored == ""


async def test_an_answer_stored_before_the_actor_scope_still_replays(
    identity: IdentityClient, campus: Campus
) -> None:
    """During a rollout the previous version wrote (client, request_id) answers: the same request of
    the same actor replays it; another actor's request under that id is acted on, not refused."""
    pending = await identity.sign_up(campus)
    request = pb.ApproveStudentRequest(user_id=pending.id, note="ok", request_id=unique("r"))
    first = await identity.stub.ApproveStudent(request, metadata=campus.staff_md)
    moved = await identity.db.execute(
        """WITH old AS (DELETE FROM idempotency_answers WHERE client = 'web' AND request_id = $1 RETURNING *)
           INSERT INTO idempotency_records (client, request_id, rpc, request_sha256, response, created_at)
           SELECT client, request_id, rpc, request_sha256, response, created_at FROM old""",
        request.request_id,
    )
    assert moved == "INSERT 0 1"
    assert await identity.stub.ApproveStudent(request, metadata=campus.staff_md) == first
    colleague = await identity.new_user(
        2, campus.school.id, email=campus.email(), first_name="Cat", last_name="Colleague"
    )
    other = await identity.sign_up(campus)
    theirs = pb.ApproveStudentRequest(user_id=other.id, note="ok", request_id=request.request_id)
    approved = await identity.stub.ApproveStudent(theirs, metadata=identity.md("platform", colleague.id))
    assert (approved.id, approved.status) == (other.id, res.USER_STATUS_ACTIVE)


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
