"""Every refusal of RequestEmailChange, ConfirmEmailChange, CancelEmailChange and MergePendingStudent,
provoked over gRPC, and what each leaves behind."""

from __future__ import annotations

import uuid

import grpc

from identity_service.service.courier import Courier
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity.identity_support import (
    Campus,
    IdentityClient,
    invalid,
    not_found,
    not_staff,
    refused,
)
from tests.integration.identity_email.email_support import (
    PASSWORD,
    change_row,
    confirm,
    deliver,
    mails_to,
    next_code,
    personal,
    request_change,
    wrong,
)
from tests.integration.identity_mail.mail_helpers import SmtpServer

FAILED = grpc.StatusCode.FAILED_PRECONDITION
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_request_refusals(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus)
    other = await identity.new_campus()
    await invalid(
        request_change(identity, campus, student, "not an address"), "new_email", reason="INVALID_EMAIL"
    )
    await invalid(request_change(identity, campus, student, ""), "new_email", reason="INVALID_EMAIL")
    ghost = res.User(id=str(uuid.uuid4()))
    await not_found(request_change(identity, campus, ghost, personal()), "USER_NOT_FOUND")
    await not_staff(request_change(identity, other, student, personal()))
    await refused(
        request_change(identity, campus, student, personal(), disable_file_updates=False),
        FAILED,
        "FILE_UPDATES_MUST_BE_DISABLED",
    )
    taken = grpc.StatusCode.ALREADY_EXISTS
    await refused(
        request_change(identity, campus, student, f" {other.staff.email.upper()} "), taken, "EMAIL_TAKEN"
    )
    await refused(request_change(identity, campus, student, student.email), taken, "EMAIL_TAKEN")
    await refused(request_change(identity, campus, campus.staff, personal()), FAILED, "FAILED_PRECONDITION")
    assert await identity.count("SELECT count(*) FROM email_changes WHERE user_id = $1", student.id) == 0
    after = await identity.stub.GetUser(pb.GetUserRequest(id=student.id), metadata=identity.admin)
    assert not after.file_updates_disabled  # nothing refused changed anything


async def test_file_updates_already_off_needs_no_flag(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus)
    request = pb.SetFileUpdatesRequest(user_id=student.id, enabled=False)
    await identity.stub.SetFileUpdates(request, metadata=campus.staff_md)
    change = await request_change(identity, campus, student, personal(), disable_file_updates=False)
    assert change.state == res.EMAIL_CHANGE_STATE_PENDING and change.file_updates_disabled


async def test_resends_are_rate_limited_per_student_and_per_address(
    identity: IdentityClient, campus: Campus
) -> None:
    student = await identity.new_student(campus)
    for _ in range(5):
        await request_change(identity, campus, student, personal())
    await refused(request_change(identity, campus, student, personal()), EXHAUSTED, "RATE_LIMITED")
    assert await identity.count("SELECT count(*) FROM email_changes WHERE user_id = $1", student.id) == 5

    address = personal("shared")
    students = [await identity.new_student(campus) for _ in range(6)]
    for one in students[:5]:
        await request_change(identity, campus, one, address)
    await refused(request_change(identity, campus, students[5], address.upper()), EXHAUSTED, "RATE_LIMITED")


async def test_a_new_request_replaces_the_old_change_and_its_unsent_code(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.new_student(campus)
    first_address, second_address = personal("first"), personal("second")
    first = await request_change(identity, campus, student, first_address)
    second = await request_change(identity, campus, student, second_address)
    code = await next_code(courier, mail_server, second_address)
    assert mails_to(mail_server, first_address) == []  # the replaced change's code never went out
    assert (await change_row(identity.db, first.id))["state"] == "CANCELLED"
    confirmed = await confirm(identity, student.id, code)
    assert confirmed.email == second_address
    assert (await change_row(identity.db, second.id))["state"] == "CONFIRMED"


async def test_request_id_replays_the_first_answer_and_sends_one_code(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.new_student(campus)
    address = personal()
    first = await request_change(identity, campus, student, address, request_id="req-1")
    again = await request_change(identity, campus, student, address, request_id="req-1")
    assert again == first
    await invalid(
        request_change(identity, campus, student, personal(), request_id="req-1"), reason="REQUEST_ID_REUSED"
    )
    await deliver(courier)
    assert len(mails_to(mail_server, address)) == 1


async def test_confirm_refusals(identity: IdentityClient, campus: Campus) -> None:
    student = await identity.new_student(campus)
    await not_found(confirm(identity, str(uuid.uuid4()), "ABCD-EFGH"), "USER_NOT_FOUND")
    await refused(confirm(identity, student.id, "ABCD-EFGH"), FAILED, "NO_PENDING_EMAIL_CHANGE")
    change = await request_change(identity, campus, student, personal())
    await invalid(confirm(identity, student.id, "ABCD-EFGH", "short"), "new_password")
    await refused(
        confirm(identity, student.id, "ABCD-EFGH", actor=campus.staff.id),
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
    assert (await change_row(identity.db, change.id))["attempts"] == 0  # none of these used a try
    # the courier has not sent the code yet: there is no code, any guess is wrong and counts
    await refused(
        confirm(identity, student.id, "ABCD-EFGH", actor=student.id),
        grpc.StatusCode.INVALID_ARGUMENT,
        "CODE_INVALID",
    )
    row = await change_row(identity.db, change.id)
    assert (row["attempts"], row["code_hash"], row["state"]) == (1, None, "PENDING")


async def test_cancel_refusals_and_cancel(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.new_student(campus)
    cancel = pb.CancelEmailChangeRequest(user_id=student.id, request_id="cancel-1")
    await refused(
        identity.stub.CancelEmailChange(cancel, metadata=campus.staff_md), FAILED, "NO_PENDING_EMAIL_CHANGE"
    )
    other = await identity.new_campus()
    await not_staff(identity.stub.CancelEmailChange(cancel, metadata=other.staff_md))
    ghost = pb.CancelEmailChangeRequest(user_id=str(uuid.uuid4()))
    await not_found(identity.stub.CancelEmailChange(ghost, metadata=campus.staff_md), "USER_NOT_FOUND")

    address = personal()
    change = await request_change(identity, campus, student, address)
    cancelled = await identity.stub.CancelEmailChange(cancel, metadata=campus.staff_md)
    assert (cancelled.id, cancelled.state) == (change.id, res.EMAIL_CHANGE_STATE_CANCELLED)
    assert await identity.stub.CancelEmailChange(cancel, metadata=campus.staff_md) == cancelled  # replayed
    await deliver(courier)
    assert mails_to(mail_server, address) == []
    await refused(confirm(identity, student.id, "ABCD-EFGH"), FAILED, "NO_PENDING_EMAIL_CHANGE")
    actions = await identity.db.fetch(
        "SELECT action, actor_id::text FROM audit_events WHERE user_id = $1 ORDER BY id", student.id
    )
    assert [(a["action"], a["actor_id"]) for a in actions][-2:] == [
        ("email_change.requested", campus.staff.id),
        ("email_change.cancelled", campus.staff.id),
    ]


async def test_code_expired(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.new_student(campus)
    address = personal()
    change = await request_change(identity, campus, student, address)
    code = await next_code(courier, mail_server, address)
    await identity.db.execute(
        "UPDATE email_changes SET expire_time = now() - interval '1 minute' WHERE id = $1", change.id
    )
    await refused(confirm(identity, student.id, code), FAILED, "CODE_EXPIRED")
    row = await change_row(identity.db, change.id)
    assert (row["state"], row["attempts"]) == ("EXPIRED", 0)
    await refused(confirm(identity, student.id, code), FAILED, "CODE_EXPIRED")


async def test_an_overdue_change_gets_no_code_mail(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.new_student(campus)
    address = personal()
    change = await request_change(identity, campus, student, address)
    await identity.db.execute(
        "UPDATE email_changes SET expire_time = now() - interval '1 minute' WHERE id = $1", change.id
    )
    await deliver(courier)
    assert mails_to(mail_server, address) == []
    row = await identity.db.fetchrow(
        "SELECT status, body FROM outbox_messages WHERE email_change_id = $1", change.id
    )
    assert (row["status"], row["body"]) == ("ABANDONED", "")
    await courier.housekeep()
    assert (await change_row(identity.db, change.id))["state"] == "EXPIRED"


async def test_five_wrong_codes_lock_the_change(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.new_student(campus)
    address = personal()
    change = await request_change(identity, campus, student, address)
    code = await next_code(courier, mail_server, address)
    for left in (4, 3, 2, 1):
        error = await refused(
            confirm(identity, student.id, wrong(code)), grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID"
        )
        assert f"{left} tr" in (error.details() or "")
    await refused(confirm(identity, student.id, wrong(code)), EXHAUSTED, "CODE_ATTEMPTS_EXCEEDED")
    row = await change_row(identity.db, change.id)
    assert (row["state"], row["attempts"]) == ("LOCKED", 5)
    await refused(confirm(identity, student.id, code, PASSWORD), EXHAUSTED, "CODE_ATTEMPTS_EXCEEDED")
    user = await identity.stub.GetUser(pb.GetUserRequest(id=student.id), metadata=identity.admin)
    assert user.email == student.email
    locked = await identity.count(
        "SELECT count(*) FROM audit_events WHERE user_id = $1 AND action = 'email_change.locked'", student.id
    )
    assert locked == 1


async def test_address_taken_before_confirmation(
    identity: IdentityClient, campus: Campus, courier: Courier, mail_server: SmtpServer
) -> None:
    student = await identity.new_student(campus)
    address = personal()
    change = await request_change(identity, campus, student, address)
    code = await next_code(courier, mail_server, address)
    await identity.sign_up(campus, email=address.upper())  # someone takes the address meanwhile
    await refused(
        confirm(identity, student.id, code, PASSWORD), grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN"
    )
    user = await identity.stub.GetUser(pb.GetUserRequest(id=student.id), metadata=identity.admin)
    assert user.email == student.email and not user.email_verified
    assert (await change_row(identity.db, change.id))["state"] == "PENDING"


async def test_merge_refusals(identity: IdentityClient, campus: Campus) -> None:
    pending = await identity.sign_up(campus)
    active = await identity.new_student(campus)
    elsewhere = await identity.new_campus()
    stranger = await identity.new_student(elsewhere)

    def merge(pending_id: str, existing_id: str, md: object = campus.staff_md) -> object:
        request = pb.MergePendingStudentRequest(pending_user_id=pending_id, existing_user_id=existing_id)
        return identity.stub.MergePendingStudent(request, metadata=md)

    await refused(merge(active.id, pending.id), FAILED, "NOT_PENDING")
    await refused(merge(pending.id, stranger.id, identity.admin), FAILED, "NOT_SAME_SCHOOL")
    await refused(merge(pending.id, campus.staff.id), FAILED, "NOT_SAME_SCHOOL")
    await refused(merge(pending.id, pending.id), FAILED, "NOT_SAME_SCHOOL")
    await not_staff(merge(pending.id, active.id, elsewhere.staff_md))
    await not_found(merge(str(uuid.uuid4()), active.id), "USER_NOT_FOUND")
    await not_found(merge(pending.id, str(uuid.uuid4())), "USER_NOT_FOUND")
    await invalid(merge("", "nope"), "pending_user_id", "existing_user_id")
    assert await identity.count("SELECT count(*) FROM users WHERE id = $1", pending.id) == 1
    assert await identity.count("SELECT count(*) FROM email_changes WHERE user_id = $1", active.id) == 0
