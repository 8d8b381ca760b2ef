"""GetUser and LookupUserByEmail: who may read whom."""

from __future__ import annotations

import uuid

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from tests.integration.identity.identity_support import Campus, IdentityClient, invalid, not_found, not_staff


async def test_get_user_by_role(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus)
    request = pb.GetUserRequest(id=student.id)
    for md in (identity.admin, identity.md("importer"), campus.staff_md, identity.md("platform", student.id)):
        assert await identity.stub.GetUser(request, metadata=md) == student


async def test_get_user_refused(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus)
    other = await identity.new_campus()
    request = pb.GetUserRequest(id=student.id)
    await not_staff(identity.stub.GetUser(request, metadata=other.staff_md))
    await not_staff(identity.stub.GetUser(request, metadata=identity.md("platform")))
    classmate = await identity.new_student(campus)
    await not_staff(identity.stub.GetUser(request, metadata=identity.md("platform", classmate.id)))
    missing = pb.GetUserRequest(id=str(uuid.uuid4()))
    await not_staff(identity.stub.GetUser(missing, metadata=identity.md("platform")))  # no existence probing


async def test_get_user_not_found_and_invalid(identity: IdentityClient, campus: Campus) -> None:
    missing = pb.GetUserRequest(id=str(uuid.uuid4()))
    await not_found(identity.stub.GetUser(missing, metadata=identity.admin), "USER_NOT_FOUND")
    await not_found(identity.stub.GetUser(missing, metadata=campus.staff_md), "USER_NOT_FOUND")
    await invalid(identity.stub.GetUser(pb.GetUserRequest(id="x"), metadata=identity.admin), "id")


async def test_lookup_by_email(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus)
    request = pb.LookupUserByEmailRequest(email=f"  {student.email.upper()}  ")
    for md in (identity.admin, identity.md("importer"), campus.staff_md):
        assert await identity.stub.LookupUserByEmail(request, metadata=md) == student


async def test_lookup_refused_and_not_found(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus)
    other = await identity.new_campus()
    lookup = identity.stub.LookupUserByEmail
    request = pb.LookupUserByEmailRequest(email=student.email)
    await not_staff(lookup(request, metadata=other.staff_md))
    await not_staff(lookup(request, metadata=identity.md("platform")))
    await not_staff(lookup(request, metadata=identity.md("platform", student.id)))
    unknown = pb.LookupUserByEmailRequest(email=campus.email())
    await not_found(lookup(unknown, metadata=identity.admin), "USER_NOT_FOUND")
    await not_found(lookup(unknown, metadata=campus.staff_md), "USER_NOT_FOUND")
    bad = pb.LookupUserByEmailRequest(email="no at sign")
    await invalid(lookup(bad, metadata=identity.admin), "email", reason="INVALID_EMAIL")
