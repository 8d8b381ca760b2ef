"""ListAuditEvents and the append-only audit trail (product rule 10)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from tests.integration.identity.identity_support import Campus, IdentityClient, invalid, not_found, not_staff


async def _events(identity: IdentityClient, md: object, **fields: Any) -> pb.ListAuditEventsResponse:
    return await identity.stub.ListAuditEvents(pb.ListAuditEventsRequest(**fields), metadata=md)


async def test_school_trail_newest_first_with_actor_and_client(
    identity: IdentityClient, campus: Campus
) -> None:
    pending = await identity.sign_up(campus)
    await identity.stub.ApproveStudent(pb.ApproveStudentRequest(user_id=pending.id), metadata=campus.staff_md)
    page = await _events(identity, campus.staff_md, school_id=campus.school.id)
    assert [e.action for e in page.events] == [
        "user.approved",
        "user.signed_up",
        "user.created",
        "school.created",
    ]
    approved = page.events[0]
    assert (approved.actor_id, approved.client, approved.user_id, approved.school_id) == (
        campus.staff.id,
        "web",
        pending.id,
        campus.school.id,
    )
    assert approved.details["status"] == ["PENDING", "ACTIVE"]
    assert approved.time.seconds > 0 and not page.next_page_token
    staff_created = page.events[2]
    assert (staff_created.client, staff_created.actor_id, staff_created.user_id) == (
        "admin",
        "",
        campus.staff.id,
    )


async def test_paged_and_filtered_by_user(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus)
    for enabled in (False, True, False):
        request = pb.SetFileUpdatesRequest(user_id=student.id, enabled=enabled)
        await identity.stub.SetFileUpdates(request, metadata=campus.staff_md)
    ids: list[str] = []
    token = ""
    while True:
        page = await _events(
            identity,
            campus.staff_md,
            school_id=campus.school.id,
            user_id=student.id,
            page_size=3,
            page_token=token,
        )
        ids.extend(e.id for e in page.events)
        assert all(e.user_id == student.id for e in page.events)
        token = page.next_page_token
        if not token:
            break
    assert len(ids) == 4 and ids == sorted(ids, key=int, reverse=True)
    by_admin = await _events(identity, identity.admin, user_id=student.id)
    assert [e.id for e in by_admin.events] == ids


async def test_errors(identity: IdentityClient, campus: Campus) -> None:
    other = await identity.new_campus()
    await not_staff(_events(identity, other.staff_md, school_id=campus.school.id))
    await not_staff(_events(identity, identity.md("platform"), school_id=campus.school.id))
    await invalid(_events(identity, campus.staff_md, user_id=campus.staff.id), "school_id")
    await invalid(_events(identity, identity.admin), "school_id")
    await invalid(_events(identity, identity.admin, school_id="x", user_id="y"), "school_id", "user_id")
    await invalid(_events(identity, campus.staff_md, school_id=campus.school.id, page_size=1000), "page_size")
    await invalid(
        _events(identity, campus.staff_md, school_id=campus.school.id, page_token="e30"), "page_token"
    )
    await not_found(_events(identity, identity.admin, school_id=str(uuid.uuid4())), "SCHOOL_NOT_FOUND")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'forged' WHERE school_id = $1",
        "DELETE FROM audit_events WHERE school_id = $1",
    ],
)
async def test_database_refuses_to_change_the_trail(
    identity: IdentityClient, campus: Campus, statement: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await identity.db.execute(statement, campus.school.id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await identity.db.execute("TRUNCATE audit_events")
    assert await identity.audit_count(school_id=campus.school.id) == 2
