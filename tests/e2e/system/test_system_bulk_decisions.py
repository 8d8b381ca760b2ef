"""Issue 9's careers-office story for bulk decisions, against the running processes: term starts, 300
students have signed up themselves; staff approve them in one BatchApproveStudents call that carries
3 ids that are not theirs to approve (a typo, a student of another school, an id nobody has). 297 are
approved, the 3 come back with reasons, the audit trail has 297 approvals; the web app's retry of
the same request (same request_id) answers the same and changes nothing."""

from __future__ import annotations

import asyncio
import uuid

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.e2e.system.system_support import Campus, email, new_campus
from tests.process_stack import ProcessStack


async def _sign_ups(campus: Campus, count: int) -> list[res.User]:
    made: list[res.User] = []
    for start in range(0, count, 20):
        wave = [campus.sign_up(email("self", "gmail.com")) for _ in range(min(20, count - start))]
        made.extend(await asyncio.gather(*wave))
    return made


async def _approvals(campus: Campus) -> list[ipb.AuditEvent]:
    return [e for e in await campus.audit_events() if e.action == "user.approved"]


async def test_bulk_approve_300_with_3_invalid_ids(stack: ProcessStack) -> None:
    campus = await new_campus(stack, "Careers Office")
    elsewhere = await new_campus(stack, "Another College")
    students = await _sign_ups(campus, 297)
    stranger = await elsewhere.sign_up(email("stranger", "gmail.com"))
    ids = [s.id for s in students]
    assert await campus.pending_ids() == set(ids)
    asked = [*ids[:150], "1234-not-an-id", *ids[150:], stranger.id, str(uuid.uuid4())]
    request = ipb.BatchApproveStudentsRequest(
        school_id=campus.id, user_ids=asked, note="fall term", request_id=f"term-start-{uuid.uuid4()}"
    )

    reply = await stack.identity.BatchApproveStudents(request, metadata=campus.staff_md, timeout=60)

    assert [r.user_id for r in reply.results][:150] == ids[:150]
    reasons = {i: r.error_reason for i, r in enumerate(reply.results) if r.error_reason}
    assert reasons == {150: "INVALID_ARGUMENT", 298: "NOT_SAME_SCHOOL", 299: "USER_NOT_FOUND"}
    assert not reply.results[298].HasField("user")  # nothing of the other school's student
    approved = [r.user for r in reply.results if not r.error_reason]
    assert len(approved) == 297 and {u.status for u in approved} == {res.USER_STATUS_ACTIVE}
    assert await campus.pending_ids() == set()
    assert (await elsewhere.user(stranger.id)).status == res.USER_STATUS_PENDING
    approvals = await _approvals(campus)
    assert sorted(e.user_id for e in approvals) == sorted(ids)
    assert {e.actor_id for e in approvals} == {campus.staff.id}
    assert {e.details["note"] for e in approvals} == {"fall term"}

    everyone = await campus.users()
    again = await stack.identity.BatchApproveStudents(request, metadata=campus.staff_md, timeout=60)
    assert again == reply
    assert len(await _approvals(campus)) == 297
    assert await campus.users() == everyone  # same versions and update times: nothing written
