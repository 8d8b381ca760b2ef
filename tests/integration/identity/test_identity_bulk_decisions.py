"""Issue 9, bulk decisions over gRPC: BatchApproveStudents / BatchDeclineStudents decide each id on its
own (one result per id, in order, with a reason for each failure), audit each decided student like
the single RPCs, and replay a repeated request_id without changing anything."""

from __future__ import annotations

import asyncio
import json
import uuid

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity.identity_support import (
    Campus,
    IdentityClient,
    invalid,
    not_staff,
    unique,
)


async def _pending(identity: IdentityClient, campus: Campus, count: int) -> list[str]:
    made: list[str] = []
    for start in range(0, count, 25):
        batch = [identity.sign_up(campus) for _ in range(min(25, count - start))]
        made.extend(u.id for u in await asyncio.gather(*batch))
    return made


async def _statuses(identity: IdentityClient, ids: list[str]) -> dict[str, str]:
    rows = await identity.db.fetch("SELECT id::text, status FROM users WHERE id = ANY($1::uuid[])", ids)
    return {r["id"]: r["status"] for r in rows}


async def test_careers_office_approves_300_with_3_invalid_ids(identity: IdentityClient) -> None:
    """The careers-office story of issue 9: 297 approved, 3 reasons, 297 audit events; the repeat of
    the request changes nothing and answers the same."""
    campus = await identity.new_campus()
    ids = await _pending(identity, campus, 297)
    other = await identity.new_campus()
    foreign = (await identity.sign_up(other)).id
    asked = [*ids[:100], "not-an-id", *ids[100:200], foreign, *ids[200:], str(uuid.uuid4())]
    request = pb.BatchApproveStudentsRequest(
        school_id=campus.school.id, user_ids=asked, note="term start", request_id=unique("bulk-")
    )
    events = await identity.audit_count(school_id=campus.school.id)

    reply = await identity.stub.BatchApproveStudents(request, metadata=campus.staff_md, timeout=60)

    assert len(reply.results) == 300
    assert [r.user_id for r in reply.results][:100] == ids[:100]
    failures = [(i, r.error_reason) for i, r in enumerate(reply.results) if r.error_reason]
    assert failures == [(100, "INVALID_ARGUMENT"), (201, "NOT_SAME_SCHOOL"), (299, "USER_NOT_FOUND")]
    assert not reply.results[201].HasField("user") and foreign not in reply.results[201].error_message
    approved = [r for r in reply.results if not r.error_reason]
    assert len(approved) == 297 and all(r.user.status == res.USER_STATUS_ACTIVE for r in approved)
    assert set((await _statuses(identity, ids)).values()) == {"ACTIVE"}
    assert (await _statuses(identity, [foreign]))[foreign] == "PENDING"
    rows = await identity.db.fetch(
        "SELECT user_id::text, details FROM audit_events WHERE school_id = $1 AND action = 'user.approved'",
        campus.school.id,
    )
    assert sorted(r["user_id"] for r in rows) == sorted(ids)
    details = json.loads(rows[0]["details"]) if isinstance(rows[0]["details"], str) else rows[0]["details"]
    assert details == {"status": ["PENDING", "ACTIVE"], "note": "term start"}
    assert await identity.audit_count(school_id=campus.school.id) == events + 297

    again = await identity.stub.BatchApproveStudents(request, metadata=campus.staff_md, timeout=60)
    assert again == reply
    assert await identity.audit_count(school_id=campus.school.id) == events + 297
    versions = await identity.count("SELECT max(version) FROM users WHERE id = ANY($1::uuid[])", ids)
    assert versions == 2  # signed up (1), approved once (2)


async def test_batch_decline_repeats_and_not_pending(identity: IdentityClient) -> None:
    campus = await identity.new_campus()
    first, second = await _pending(identity, campus, 2)
    active = (await identity.new_student(campus)).id
    reply = await identity.stub.BatchDeclineStudents(
        pb.BatchDeclineStudentsRequest(
            school_id=campus.school.id, user_ids=[first, active, first.upper(), second], reason="not ours"
        ),
        metadata=campus.staff_md,
    )
    assert [r.error_reason for r in reply.results] == ["", "NOT_PENDING", "INVALID_ARGUMENT", ""]
    assert "user_ids[0]" in reply.results[2].error_message and reply.results[2].user_id == first
    assert reply.results[0].user.status == res.USER_STATUS_DECLINED
    assert await _statuses(identity, [first, second, active]) == {
        first: "DECLINED",
        second: "DECLINED",
        active: "ACTIVE",
    }
    assert await identity.audit_count(user_id=first) == 2  # signed up, declined once


async def test_batch_request_rules(identity: IdentityClient) -> None:
    campus = await identity.new_campus()
    pending = await identity.sign_up(campus)
    approve = identity.stub.BatchApproveStudents
    school = campus.school.id
    await invalid(
        approve(pb.BatchApproveStudentsRequest(school_id=school), metadata=campus.staff_md), "user_ids"
    )
    many = [str(uuid.uuid4()) for _ in range(501)]
    await invalid(
        approve(pb.BatchApproveStudentsRequest(school_id=school, user_ids=many), metadata=campus.staff_md),
        "user_ids",
    )
    await invalid(
        approve(
            pb.BatchApproveStudentsRequest(school_id=school, user_ids=[pending.id], note="a\x00b"),
            metadata=campus.staff_md,
        ),
        "note",
    )
    other = await identity.new_campus()
    await not_staff(
        approve(
            pb.BatchApproveStudentsRequest(school_id=school, user_ids=[pending.id]), metadata=other.staff_md
        )
    )
    key = unique("bulk-")
    await approve(
        pb.BatchApproveStudentsRequest(school_id=school, user_ids=[pending.id], request_id=key),
        metadata=campus.staff_md,
    )
    await invalid(
        approve(
            pb.BatchApproveStudentsRequest(school_id=school, user_ids=[pending.id], note="x", request_id=key),
            metadata=campus.staff_md,
        ),
        reason="REQUEST_ID_REUSED",
    )
    # a malformed id (NUL, a megabyte) is that item's INVALID_ARGUMENT; the long one is not echoed
    reply = await approve(
        pb.BatchApproveStudentsRequest(school_id=school, user_ids=["a\x00b", "a" * 1_000_000]),
        metadata=campus.staff_md,
    )
    assert [(r.user_id, r.error_reason) for r in reply.results] == [
        ("a\x00b", "INVALID_ARGUMENT"),
        ("", "INVALID_ARGUMENT"),
    ]
    assert [r.error_message for r in reply.results] == [
        "user_ids[0] is not an id (UUID)",
        "user_ids[1] is not an id (UUID)",
    ]
