"""SignUpStudent: a PENDING self-registered student whose username is the email."""

from __future__ import annotations

import asyncio
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
    refused,
    unique,
)

PASSWORD = "correct horse battery"


async def test_sign_up_creates_a_pending_student(identity: IdentityClient, campus: Campus) -> None:
    email = f"{unique('Pat.')}@GMail.com"
    user = await identity.sign_up(
        campus, email=f" {email} ", first_name="Pat", last_name="Lee", password=PASSWORD
    )
    normal = email.split("@")[0] + "@gmail.com"
    assert (user.status, user.origin, user.user_type) == (
        res.USER_STATUS_PENDING,
        res.USER_ORIGIN_SELF_SIGNUP,
        res.USER_TYPE_STUDENT,
    )
    assert user.email == normal and user.username == normal
    assert (user.school_id, user.first_name, user.last_name) == (campus.school.id, "Pat", "Lee")
    stored = await identity.db.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    event = await identity.db.fetchrow(
        "SELECT action, actor_id::text, client, details::text FROM audit_events WHERE user_id = $1", user.id
    )
    assert (event["action"], event["actor_id"], event["client"]) == ("user.signed_up", user.id, "web")
    assert "password" not in event["details"] and PASSWORD not in event["details"]
    assert json.loads(event["details"])["status"] == [None, "PENDING"]


async def test_bad_input(identity: IdentityClient, campus: Campus) -> None:
    email = f"{unique()}@gmail.com"
    sign_up = identity.stub.SignUpStudent
    md = identity.md("platform")
    school = campus.school.id
    request = pb.SignUpStudentRequest(
        school_id=school, email=email, first_name="A", last_name="B", password="Zq9!xw"
    )
    error = await refused(
        sign_up(request, metadata=md), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["password"]
    )
    assert "Zq9!xw" not in (error.details() or "")
    await invalid(
        sign_up(pb.SignUpStudentRequest(school_id=school, email=email, password=PASSWORD), metadata=md),
        "first_name",
        "last_name",
    )
    await invalid(
        sign_up(
            pb.SignUpStudentRequest(email=email, first_name="A", last_name="B", password="x" * 257),
            metadata=md,
        ),
        "school_id",
        "password",
    )
    bad_email = pb.SignUpStudentRequest(
        school_id=school, email="nope", first_name="A", last_name="B", password=PASSWORD
    )
    await invalid(sign_up(bad_email, metadata=md), "email", reason="INVALID_EMAIL")
    assert await identity.users_with_email(email) == 0


async def test_unknown_school(identity: IdentityClient) -> None:
    request = pb.SignUpStudentRequest(
        school_id=str(uuid.uuid4()),
        email=f"{unique()}@gmail.com",
        first_name="A",
        last_name="B",
        password=PASSWORD,
    )
    await not_found(
        identity.stub.SignUpStudent(request, metadata=identity.md("platform")), "SCHOOL_NOT_FOUND"
    )


async def test_email_taken_by_any_user_type(identity: IdentityClient, campus: Campus) -> None:
    other = await identity.new_campus()
    await refused(
        identity.sign_up(campus, email=other.staff.email.upper()),
        grpc.StatusCode.ALREADY_EXISTS,
        "EMAIL_TAKEN",
    )
    assert await identity.users_with_email(other.staff.email) == 1


async def test_username_taken(identity: IdentityClient, campus: Campus) -> None:
    email = f"{unique()}@gmail.com"
    await identity.new_student(
        campus, username=email.upper()
    )  # a loaded student whose username is that address
    await refused(identity.sign_up(campus, email=email), grpc.StatusCode.ALREADY_EXISTS, "USERNAME_TAKEN")
    assert await identity.users_with_email(email) == 0


async def test_platform_only(identity: IdentityClient, campus: Campus) -> None:
    request = pb.SignUpStudentRequest(
        school_id=campus.school.id,
        email=f"{unique()}@gmail.com",
        first_name="A",
        last_name="B",
        password=PASSWORD,
    )
    await refused(
        identity.stub.SignUpStudent(request, metadata=identity.md("importer")),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )


async def test_concurrent_repeats_of_one_request_act_once(identity: IdentityClient, campus: Campus) -> None:
    email = f"{unique()}@gmail.com"
    request_id = unique("r")
    users = await asyncio.gather(
        *(identity.sign_up(campus, email=email, request_id=request_id) for _ in range(5))
    )
    assert len({u.id for u in users}) == 1
    assert await identity.users_with_email(email) == 1
    assert await identity.audit_count(user_id=users[0].id) == 1
    await invalid(
        identity.sign_up(campus, email=email, request_id=request_id, first_name="Other"),
        reason="REQUEST_ID_REUSED",
    )
