"""CreateSchool and GetSchool."""

from __future__ import annotations

import uuid

import grpc

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from tests.integration.identity.identity_support import (
    IdentityClient,
    invalid,
    not_found,
    refused,
    unique,
)


async def _schools(identity: IdentityClient) -> int:
    return await identity.count("SELECT count(*) FROM schools")


async def test_create_school_normalises_domains_and_is_audited(identity: IdentityClient) -> None:
    tag = unique("d")
    request = pb.CreateSchoolRequest(
        name="  University of Example ",
        email_domains=[f"@{tag}.EDU", f" {tag}.edu", f"Cs.{tag}.edu"],
        sso_enabled=True,
    )
    school = await identity.stub.CreateSchool(request, metadata=identity.admin)
    assert school.name == "University of Example"
    assert list(school.email_domains) == [f"{tag}.edu", f"cs.{tag}.edu"]
    assert school.sso_enabled and school.create_time.seconds > 0
    assert uuid.UUID(school.id)
    row = await identity.db.fetchrow(
        "SELECT action, client, actor_id, details FROM audit_events WHERE school_id = $1", school.id
    )
    assert (row["action"], row["client"], row["actor_id"]) == ("school.created", "admin", None)


async def test_get_school_for_any_role(identity: IdentityClient) -> None:
    school = await identity.new_school()
    for role in ("admin", "platform", "importer"):
        got = await identity.stub.GetSchool(pb.GetSchoolRequest(id=school.id), metadata=identity.md(role))
        assert got == school


async def test_get_school_errors(identity: IdentityClient) -> None:
    get = identity.stub.GetSchool
    await not_found(
        get(pb.GetSchoolRequest(id=str(uuid.uuid4())), metadata=identity.admin), "SCHOOL_NOT_FOUND"
    )
    await invalid(get(pb.GetSchoolRequest(id="not-a-uuid"), metadata=identity.admin), "id")
    await invalid(get(pb.GetSchoolRequest(id=""), metadata=identity.admin), "id")


async def test_create_school_bad_input_names_every_field_and_writes_nothing(identity: IdentityClient) -> None:
    before = await _schools(identity)
    create = identity.stub.CreateSchool
    await invalid(create(pb.CreateSchoolRequest(name=" "), metadata=identity.admin), "name")
    await invalid(create(pb.CreateSchoolRequest(name="x" * 201), metadata=identity.admin), "name")
    await invalid(create(pb.CreateSchoolRequest(name="bad\x00name"), metadata=identity.admin), "name")
    await invalid(
        create(
            pb.CreateSchoolRequest(name="A", email_domains=["ok.edu", "not a domain"]),
            metadata=identity.admin,
        ),
        "email_domains[1]",
    )
    await invalid(
        create(
            pb.CreateSchoolRequest(name="A", email_domains=[f"d{i}.edu" for i in range(21)]),
            metadata=identity.admin,
        ),
        "email_domains",
    )
    await invalid(
        create(
            pb.CreateSchoolRequest(name="", email_domains=["@"], request_id="r" * 129),
            metadata=identity.admin,
        ),
        "name",
        "email_domains[0]",
        "request_id",
    )
    assert await _schools(identity) == before


async def test_create_school_is_admin_only(identity: IdentityClient) -> None:
    request = pb.CreateSchoolRequest(name="Nope")
    for role in ("platform", "importer"):
        await refused(
            identity.stub.CreateSchool(request, metadata=identity.md(role)),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
    await refused(identity.stub.CreateSchool(request), grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")


async def test_create_school_request_id(identity: IdentityClient) -> None:
    request_id = unique("req")
    request = pb.CreateSchoolRequest(name="Once", email_domains=["once.edu"], request_id=request_id)
    first = await identity.stub.CreateSchool(request, metadata=identity.admin)
    again = await identity.stub.CreateSchool(request, metadata=identity.admin)
    assert again == first
    assert await identity.count("SELECT count(*) FROM schools WHERE id = $1", first.id) == 1
    other = pb.CreateSchoolRequest(name="Twice", email_domains=["once.edu"], request_id=request_id)
    await invalid(identity.stub.CreateSchool(other, metadata=identity.admin), reason="REQUEST_ID_REUSED")
