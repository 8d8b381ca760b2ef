"""SearchUsers: partial, case-insensitive search over names, email and username, filtered and paged."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity.identity_support import Campus, IdentityClient, invalid, not_found, not_staff


async def _search(identity: IdentityClient, campus: Campus, **fields: Any) -> pb.SearchUsersResponse:
    request = pb.SearchUsersRequest(school_id=campus.school.id, **fields)
    return await identity.stub.SearchUsers(request, metadata=campus.staff_md)


async def _names(identity: IdentityClient, campus: Campus, **fields: Any) -> list[str]:
    return [f"{u.first_name} {u.last_name}" for u in (await _search(identity, campus, **fields)).users]


async def test_partial_case_insensitive_on_each_field(identity: IdentityClient, campus: Campus) -> None:
    await identity.new_student(campus, first_name="Ann", last_name="Lee", email=campus.email("ann.lee"))
    await identity.new_student(campus, first_name="Bob", last_name="Stone", username="BSTONE_99")
    await identity.new_student(campus, first_name="Cleo", last_name="Leeds", email=campus.email("c100"))
    other = await identity.new_campus()
    await identity.new_student(other, first_name="Ann", last_name="Lee")
    assert await _names(identity, campus, query="lEe") == ["Ann Lee", "Cleo Leeds"]
    assert await _names(identity, campus, query="ANN.LEE@") == ["Ann Lee"]
    assert await _names(identity, campus, query="stone_9") == ["Bob Stone"]
    assert await _names(identity, campus, query="ann lee") == ["Ann Lee"]
    assert await _names(identity, campus, query="%") == []  # wildcards are taken literally
    assert await _names(identity, campus, query="_") == ["Bob Stone"]


async def test_filters(identity: IdentityClient, campus: Campus) -> None:
    await identity.new_student(campus, first_name="Active", last_name="Student")
    await identity.sign_up(campus, first_name="Pending", last_name="Student")
    students = await _names(identity, campus, user_types=[res.USER_TYPE_STUDENT])
    assert sorted(students) == ["Active Student", "Pending Student"]
    assert await _names(identity, campus, user_types=[res.USER_TYPE_STAFF]) == ["Sam Staff"]
    pending = await _names(identity, campus, statuses=[res.USER_STATUS_PENDING])
    assert pending == ["Pending Student"]
    both = await _names(
        identity,
        campus,
        user_types=[res.USER_TYPE_STUDENT],
        statuses=[res.USER_STATUS_ACTIVE],
        query="student",
    )
    assert both == ["Active Student"]


async def test_pages_by_name_without_gaps_or_repeats(identity: IdentityClient, campus: Campus) -> None:
    for last in ("delta", "Alpha", "charlie", "Bravo", "echo"):
        await identity.new_student(campus, first_name="Kim", last_name=last)
    seen: list[str] = []
    token = ""
    while True:
        page = await _search(identity, campus, query="kim", page_size=2, page_token=token)
        assert len(page.users) <= 2
        seen.extend(u.last_name for u in page.users)
        token = page.next_page_token
        if not token:
            break
    assert seen == ["Alpha", "Bravo", "charlie", "delta", "echo"]


async def test_bad_input(identity: IdentityClient, campus: Campus) -> None:
    await invalid(_search(identity, campus, page_size=501), "page_size")
    await invalid(_search(identity, campus, page_size=-1), "page_size")
    await invalid(_search(identity, campus, page_token="garbage!"), "page_token")
    foreign = base64.urlsafe_b64encode(json.dumps({"k": "pending", "v": ["x", "y"]}).encode()).decode()
    await invalid(_search(identity, campus, page_token=foreign), "page_token")
    forged = base64.urlsafe_b64encode(json.dumps({"k": "search", "v": ["a", "b", "c"]}).encode()).decode()
    await invalid(_search(identity, campus, page_token=forged), "page_token")
    await invalid(_search(identity, campus, user_types=[res.USER_TYPE_UNSPECIFIED]), "user_types[0]")
    await invalid(_search(identity, campus, statuses=[res.USER_STATUS_ACTIVE, 42]), "statuses[1]")
    await invalid(_search(identity, campus, query="q" * 201, page_size=900), "query", "page_size")
    no_school = pb.SearchUsersRequest(query="a")
    await invalid(identity.stub.SearchUsers(no_school, metadata=campus.staff_md), "school_id")


async def test_access(identity: IdentityClient, campus: Campus) -> None:
    other = await identity.new_campus()
    request = pb.SearchUsersRequest(school_id=campus.school.id)
    await not_staff(identity.stub.SearchUsers(request, metadata=other.staff_md))
    await not_staff(identity.stub.SearchUsers(request, metadata=identity.md("platform")))
    assert len((await identity.stub.SearchUsers(request, metadata=identity.admin)).users) == 1
    unknown = pb.SearchUsersRequest(school_id=str(uuid.uuid4()))
    await not_found(identity.stub.SearchUsers(unknown, metadata=identity.admin), "SCHOOL_NOT_FOUND")
