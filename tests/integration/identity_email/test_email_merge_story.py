"""The whole merge story over gRPC, with the courier running and a real SMTP server catching mail.

A student already exists under the school address (from the student file, file updates on); they
sign up again with a personal address and land in the pending queue. Staff merge the two; the code
arrives at the personal address; a wrong code is refused; the right one, with a new password,
switches the account to the personal address; the school address gets a notice; the student signs
in with the new address and password; the audit trail shows every step and who took it; and the
code was never written to the database or a log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.message import Message

import grpc
import pytest
from structlog.testing import capture_logs

from identity_service.service.courier import Courier
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity.identity_support import Campus, IdentityClient, not_found, refused
from tests.integration.identity_email.email_support import (
    PASSWORD,
    authenticate,
    code_forms,
    code_in,
    confirm,
    courier_running,
    database_text,
    mails_to,
    personal,
    text_of,
    wrong,
)
from tests.integration.identity_mail.mail_helpers import SmtpServer, wait_for


async def test_merge_story_end_to_end(
    identity: IdentityClient,
    campus: Campus,
    courier: Courier,
    mail_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    school_email = campus.email("ann.lee")
    existing = await identity.new_student(campus, email=school_email, first_name="Ann", last_name="Lee")
    assert not existing.file_updates_disabled
    home = personal("ann.lee")
    pending = await identity.sign_up(campus, email=home, first_name="Ann", last_name="Lee")
    assert pending.status == res.USER_STATUS_PENDING

    with capture_logs() as logs:
        async with courier_running(courier):
            merge = pb.MergePendingStudentRequest(
                pending_user_id=pending.id, existing_user_id=existing.id, request_id="merge-ann"
            )
            change = await identity.stub.MergePendingStudent(merge, metadata=campus.staff_md)
            assert (change.user_id, change.new_email) == (existing.id, home)
            assert change.state == res.EMAIL_CHANGE_STATE_PENDING and change.file_updates_disabled
            expires = change.expire_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
            assert timedelta(hours=23, minutes=55) < expires <= timedelta(hours=24)
            replayed = await identity.stub.MergePendingStudent(merge, metadata=campus.staff_md)
            assert replayed.id == change.id  # same request_id: the first answer, acted on once

            await not_found(
                identity.stub.GetUser(pb.GetUserRequest(id=pending.id), metadata=identity.admin),
                "USER_NOT_FOUND",
            )
            still = await identity.stub.GetUser(pb.GetUserRequest(id=existing.id), metadata=identity.admin)
            assert still.email == school_email and still.file_updates_disabled

            await wait_for(lambda: _has_code_mail(mail_server, home), what="the code mail")
            [code_mail] = _code_mails(mail_server, home)
            assert campus.school.name in code_mail["Subject"]
            assert campus.school.name in text_of(code_mail)
            assert code_mail.get_content_type() == "text/plain"
            code = code_in(code_mail)

            await refused(
                confirm(identity, existing.id, wrong(code)), grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID"
            )
            confirmed = await confirm(identity, existing.id, code.lower(), PASSWORD)
            assert (confirmed.id, confirmed.email) == (existing.id, home)
            assert confirmed.email_verified and confirmed.file_updates_disabled
            assert confirmed.status == res.USER_STATUS_ACTIVE

            await wait_for(lambda: _has_mail(mail_server, school_email), what="the notice to the old address")
            [notice] = mails_to(mail_server, school_email)
            notice_text = text_of(notice)
            assert campus.school.name in notice_text and "a***@gmail.com" in notice_text
            assert home not in notice_text and code not in notice_text

        signed_in = await authenticate(identity, home.upper(), PASSWORD)
        assert signed_in.id == existing.id
        await refused(
            authenticate(identity, school_email, PASSWORD),
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_CREDENTIALS",
        )
        await refused(
            confirm(identity, existing.id, code),
            grpc.StatusCode.FAILED_PRECONDITION,
            "NO_PENDING_EMAIL_CHANGE",
        )  # single use

    assert len(_code_mails(mail_server, home)) == 1 and len(mails_to(mail_server, school_email)) == 1
    assert len(mails_to(mail_server, home)) <= 2  # and the sign-up's "waiting" mail, if sent before the merge
    await _audit_shows_each_step(identity, campus, existing, pending)
    # every log line of the process but the test SMTP server's own (aiosmtpd logs what it receives)
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    assert "email.sent" in repr(logs) and "ConfirmEmailChange" in repr(logs)
    stored = await database_text(identity.db)
    assert home in stored  # the search does read the data
    for form in code_forms(code):
        assert form not in stored
        assert form not in repr(logs)
        assert form not in ours
    assert PASSWORD not in stored and PASSWORD not in repr(logs) and PASSWORD not in ours


async def _audit_shows_each_step(
    identity: IdentityClient, campus: Campus, existing: res.User, pending: res.User
) -> None:
    request = pb.ListAuditEventsRequest(school_id=campus.school.id, page_size=50)
    events = list(reversed((await identity.stub.ListAuditEvents(request, metadata=campus.staff_md)).events))
    steps = [
        (e.action, e.user_id, e.actor_id, e.client) for e in events if e.user_id in (existing.id, pending.id)
    ]
    assert steps == [
        ("user.created", existing.id, "", "admin"),
        ("user.signed_up", pending.id, pending.id, "web"),
        ("user.merged", pending.id, campus.staff.id, "web"),
        ("email_change.requested", existing.id, campus.staff.id, "web"),
        ("email_change.confirmed", existing.id, existing.id, "web"),
    ]
    merged, requested, confirmed = (e.details for e in events[-3:])
    assert merged["merged_into"] == existing.id
    assert requested["merged_from"] == pending.id
    assert list(requested["file_updates_disabled"]) == [False, True]
    assert list(confirmed["email"]) == [existing.email, pending.email]
    assert list(confirmed["email_verified"]) == [False, True] and confirmed["password_set"] is True


async def _has_mail(server: SmtpServer, address: str) -> bool:
    return bool(mails_to(server, address))


def _code_mails(server: SmtpServer, address: str) -> list[Message]:
    """The code mails to ``address`` (the pending sign-up was told it waits, too: issue 10)."""
    return [m for m in mails_to(server, address) if "your code" in str(m["Subject"])]


async def _has_code_mail(server: SmtpServer, address: str) -> bool:
    return bool(_code_mails(server, address))
