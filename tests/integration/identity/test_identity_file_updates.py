"""SetFileUpdates (product rule 7): staff switch student-file updates off and on."""

from __future__ import annotations

import json
import uuid

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


async def _set(
    identity: IdentityClient, campus: Campus, user_id: str, enabled: bool, **more: str
) -> res.User:
    request = pb.SetFileUpdatesRequest(user_id=user_id, enabled=enabled, **more)
    return await identity.stub.SetFileUpdates(request, metadata=campus.staff_md)


async def test_off_and_on_audited_once_per_change(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus)
    off = await _set(identity, campus, student.id, False)
    assert off.file_updates_disabled and off.etag != student.etag
    again = await _set(identity, campus, student.id, False)
    assert again.etag == off.etag  # no change, no new version
    on = await _set(identity, campus, student.id, True)
    assert not on.file_updates_disabled
    rows = await identity.db.fetch(
        "SELECT action, details FROM audit_events WHERE user_id = $1 ORDER BY id", student.id
    )
    assert [r["action"] for r in rows] == [
        "user.created",
        "user.file_updates_disabled",
        "user.file_updates_enabled",
    ]
    assert json.loads(rows[1]["details"]) == {"file_updates_disabled": [False, True]}


async def test_errors(identity: IdentityClient, campus: Campus) -> None:
    other = await identity.new_campus()
    student = await identity.new_student(campus)
    request = pb.SetFileUpdatesRequest(user_id=student.id, enabled=False)
    await not_staff(identity.stub.SetFileUpdates(request, metadata=other.staff_md))
    await not_found(_set(identity, campus, str(uuid.uuid4()), False), "USER_NOT_FOUND")
    await invalid(_set(identity, campus, "x", False, request_id="r" * 129), "user_id", "request_id")
    await refused(
        _set(identity, campus, campus.staff.id, False),
        grpc.StatusCode.FAILED_PRECONDITION,
        "FAILED_PRECONDITION",
    )
    request_id = unique("r")
    await _set(identity, campus, student.id, False, request_id=request_id)
    await invalid(_set(identity, campus, student.id, True, request_id=request_id), reason="REQUEST_ID_REUSED")
    assert (
        await identity.stub.GetUser(pb.GetUserRequest(id=student.id), metadata=identity.admin)
    ).file_updates_disabled
