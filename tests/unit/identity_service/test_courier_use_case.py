"""The courier over fakes: a sent mail is SENT once, a failure is retried then abandoned, a code mail
gets its code at the send, housekeeping closes overdue changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from identity_service.domain.email_changes import EmailChangeState, NewEmailChange
from identity_service.domain.mail import CODE_PLACEHOLDER, MailKind, OutgoingMail
from identity_service.service.courier import Courier, CourierConfig
from identity_service.service.ports import SendFailed
from tests.unit.identity_service.fakes import FakeDatabase, FakeMailer, FakeNotices

CONFIG = CourierConfig(send_timeout=5, lease_seconds=30, max_attempts=2)
KEYS = [b"unit-test-code-key"]


def courier(db: FakeDatabase, mailer: FakeMailer) -> Courier:
    return Courier(db.factory(), mailer, FakeNotices(), KEYS, CONFIG)


def notice(to: str = "ann@uni.example") -> OutgoingMail:
    return OutgoingMail(to=to, subject="Hi", body="Hello\n", kind=MailKind.EMAIL_CHANGE_NOTICE, user_id="u1")


async def enqueue(db: FakeDatabase, mail: OutgoingMail) -> int:
    async with db.factory()() as uow:
        return await uow.outbox.enqueue(mail)


async def test_a_mail_is_sent_once_and_its_body_erased() -> None:
    db, mailer = FakeDatabase(), FakeMailer()
    message_id = await enqueue(db, notice())
    assert await courier(db, mailer).run_once() == 1
    assert [m.to_address for m in mailer.sent] == ["ann@uni.example"]
    assert (db.outbox[message_id]["status"], db.outbox[message_id]["body"]) == ("SENT", "")
    assert await courier(db, mailer).run_once() == 0


async def test_a_failed_send_is_retried_later_then_abandoned() -> None:
    db = FakeDatabase()
    mailer = FakeMailer(failures=[SendFailed("OSError: down", permanent=False)] * 2)
    message_id = await enqueue(db, notice())
    assert await courier(db, mailer).run_once() == 1
    row = db.outbox[message_id]
    assert (row["status"], row["attempts"], row["last_error"]) == ("PENDING", 1, "OSError: down")
    row["next_attempt_at"] = datetime.now(UTC)
    await courier(db, mailer).run_once()
    assert (row["status"], row["attempts"]) == ("ABANDONED", 2) and mailer.sent == []


async def test_a_permanent_failure_is_abandoned_at_once() -> None:
    db = FakeDatabase()
    mailer = FakeMailer(failures=[SendFailed("SMTPRecipientsRefused: 550", permanent=True)])
    message_id = await enqueue(db, notice())
    await courier(db, mailer).run_once()
    assert (db.outbox[message_id]["status"], db.outbox[message_id]["attempts"]) == ("ABANDONED", 1)


async def test_a_code_mail_gets_a_fresh_code_or_is_dropped_when_the_change_closed() -> None:
    db, mailer = FakeDatabase(), FakeMailer()
    async with db.factory()() as uow:
        change = await uow.email_changes.open(
            NewEmailChange("c1", "u1", "ann@gmail.com", datetime.now(UTC) + timedelta(hours=1))
        )
        await uow.outbox.enqueue(
            OutgoingMail(
                "ann@gmail.com",
                "Code",
                f"Code: {CODE_PLACEHOLDER}\n",
                MailKind.EMAIL_CHANGE_CODE,
                None,
                "u1",
                change.id,
            )
        )
    await courier(db, mailer).run_once()
    [sent] = mailer.sent
    assert CODE_PLACEHOLDER not in sent.body and db.changes["c1"].code_hash is not None
    async with db.factory()() as uow:
        await uow.email_changes.set_state("c1", EmailChangeState.CANCELLED)
        second = await uow.outbox.enqueue(
            OutgoingMail(
                "ann@gmail.com",
                "Code",
                f"Code: {CODE_PLACEHOLDER}\n",
                MailKind.EMAIL_CHANGE_CODE,
                None,
                "u1",
                "c1",
            )
        )
    await courier(db, mailer).run_once()
    assert len(mailer.sent) == 1 and db.outbox[second]["status"] == "ABANDONED"


async def test_housekeeping_expires_overdue_changes() -> None:
    db = FakeDatabase()
    async with db.factory()() as uow:
        await uow.email_changes.open(
            NewEmailChange("c1", "u1", "a@gmail.com", datetime.now(UTC) - timedelta(seconds=1))
        )
    await courier(db, FakeMailer()).housekeep()
    assert db.changes["c1"].state is EmailChangeState.EXPIRED
