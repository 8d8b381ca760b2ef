"""CreateUser: who may create whom, defaults, validation and uniqueness."""

from __future__ import annotations

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


async def test_admin_creates_each_type(identity: IdentityClient, campus: Campus) -> None:
    email = campus.email("Ann.Lee")
    student = await identity.new_student(
        campus, email=f"  {email.upper()} ", first_name=" Ann ", last_name="Lee"
    )
    assert (student.user_type, student.status, student.origin) == (
        res.USER_TYPE_STUDENT,
        res.USER_STATUS_ACTIVE,
        res.USER_ORIGIN_STAFF,
    )
    assert student.email == f"ANN.LEE@{campus.domain}"  # domain lower-cased, local part as typed
    assert student.username == student.email  # a student's username defaults to the email
    assert (student.first_name, student.school_id, student.etag) == ("Ann", campus.school.id, 'W/"1"')
    assert not student.email_verified and not student.file_updates_disabled
    assert campus.staff.username == "" and campus.staff.user_type == res.USER_TYPE_STAFF
    employer = await identity.new_user(res.USER_TYPE_EMPLOYER, "", email=f"{unique()}@corp.example")
    assert employer.school_id == "" and employer.user_type == res.USER_TYPE_EMPLOYER


async def test_platform_staff_creates_students_of_their_school(
    identity: IdentityClient, campus: Campus
) -> None:
    request = pb.CreateUserRequest(
        user_type=res.USER_TYPE_STUDENT, school_id=campus.school.id, email=campus.email(), username="jdoe"
    )
    student = await identity.stub.CreateUser(request, metadata=campus.staff_md)
    assert student.username == "jdoe" and student.status == res.USER_STATUS_ACTIVE
    row = await identity.db.fetchrow(
        "SELECT action, client, actor_id::text, details FROM audit_events WHERE user_id = $1", student.id
    )
    assert (row["action"], row["client"], row["actor_id"]) == ("user.created", "web", campus.staff.id)
    assert '"username": [null, "jdoe"]' in row["details"]


async def test_platform_may_not_create_staff_or_other_schools_students(
    identity: IdentityClient, campus: Campus
) -> None:
    other = await identity.new_campus()
    staff = pb.CreateUserRequest(
        user_type=res.USER_TYPE_STAFF, school_id=campus.school.id, email=campus.email()
    )
    await refused(
        identity.stub.CreateUser(staff, metadata=campus.staff_md),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
    student = pb.CreateUserRequest(
        user_type=res.USER_TYPE_STUDENT, school_id=campus.school.id, email=campus.email()
    )
    await not_staff(identity.stub.CreateUser(student, metadata=other.staff_md))
    await not_staff(identity.stub.CreateUser(student, metadata=identity.md("platform")))
    a_student = await identity.new_student(campus)
    await not_staff(identity.stub.CreateUser(student, metadata=identity.md("platform", a_student.id)))
    await not_staff(identity.stub.CreateUser(student, metadata=identity.md("platform", str(uuid.uuid4()))))
    await refused(
        identity.stub.CreateUser(student, metadata=identity.md("importer")),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
    assert await identity.users_with_email(student.email) == 0


async def test_bad_input_names_the_fields_and_writes_nothing(
    identity: IdentityClient, campus: Campus
) -> None:
    create = identity.stub.CreateUser
    admin = identity.admin
    email = campus.email()
    school = campus.school.id
    student = res.USER_TYPE_STUDENT
    await invalid(create(pb.CreateUserRequest(school_id=school, email=email), metadata=admin), "user_type")
    await invalid(create(pb.CreateUserRequest(user_type=student, email=email), metadata=admin), "school_id")
    await invalid(
        create(pb.CreateUserRequest(user_type=res.USER_TYPE_STAFF, email=email), metadata=admin), "school_id"
    )
    employer = pb.CreateUserRequest(user_type=res.USER_TYPE_EMPLOYER, school_id=school, email=email)
    await invalid(create(employer, metadata=admin), "school_id")
    bad_school = pb.CreateUserRequest(user_type=student, school_id="nope", email=email)
    await invalid(create(bad_school, metadata=admin), "school_id")
    for bad in ("", "not-an-address", "a@b@c.edu", "ann@", f"{'a' * 250}@x.edu"):
        request = pb.CreateUserRequest(user_type=student, school_id=school, email=bad)
        await invalid(create(request, metadata=admin), "email", reason="INVALID_EMAIL")
    too_long = pb.CreateUserRequest(
        user_type=student,
        school_id=school,
        email=email,
        first_name="x" * 101,
        last_name="\x07",
        username="u" * 255,
        auth_identifier="a" * 255,
    )
    await invalid(create(too_long, metadata=admin), "first_name", "last_name", "username", "auth_identifier")
    assert await identity.users_with_email(email) == 0


async def test_unknown_school(identity: IdentityClient) -> None:
    request = pb.CreateUserRequest(
        user_type=res.USER_TYPE_STUDENT, school_id=str(uuid.uuid4()), email="a@b.edu"
    )
    await not_found(identity.stub.CreateUser(request, metadata=identity.admin), "SCHOOL_NOT_FOUND")


async def test_email_is_unique_across_types_and_case(identity: IdentityClient, campus: Campus) -> None:
    email = campus.email("Taken")
    await identity.new_student(campus, email=email)
    for user_type, school in ((res.USER_TYPE_EMPLOYER, ""), (res.USER_TYPE_STAFF, campus.school.id)):
        request = pb.CreateUserRequest(user_type=user_type, school_id=school, email=f" {email.lower()} ")
        await refused(
            identity.stub.CreateUser(request, metadata=identity.admin),
            grpc.StatusCode.ALREADY_EXISTS,
            "EMAIL_TAKEN",
        )
    assert await identity.users_with_email(email) == 1


async def test_username_is_unique_per_school_case_insensitively(
    identity: IdentityClient, campus: Campus
) -> None:
    await identity.new_student(campus, username="JDoe")
    request = pb.CreateUserRequest(
        user_type=res.USER_TYPE_STUDENT, school_id=campus.school.id, email=campus.email(), username="jdoe"
    )
    await refused(
        identity.stub.CreateUser(request, metadata=identity.admin),
        grpc.StatusCode.ALREADY_EXISTS,
        "USERNAME_TAKEN",
    )
    other = await identity.new_campus()
    elsewhere = await identity.new_student(other, username="jdoe")
    assert elsewhere.username == "jdoe"


async def test_request_id(identity: IdentityClient, campus: Campus) -> None:
    request = pb.CreateUserRequest(
        user_type=res.USER_TYPE_STUDENT,
        school_id=campus.school.id,
        email=campus.email(),
        request_id=unique("r"),
    )
    first = await identity.stub.CreateUser(request, metadata=campus.staff_md)
    assert await identity.stub.CreateUser(request, metadata=campus.staff_md) == first
    assert await identity.audit_count(user_id=first.id) == 1
    changed = pb.CreateUserRequest()
    changed.CopyFrom(request)
    changed.first_name = "Different"
    await invalid(identity.stub.CreateUser(changed, metadata=campus.staff_md), reason="REQUEST_ID_REUSED")


async def test_malformed_actor_header(identity: IdentityClient, campus: Campus) -> None:
    request = pb.CreateUserRequest(
        user_type=res.USER_TYPE_STUDENT, school_id=campus.school.id, email=campus.email()
    )
    await invalid(
        identity.stub.CreateUser(request, metadata=identity.md("platform", "staff-7")), "x-rollcall-actor"
    )
