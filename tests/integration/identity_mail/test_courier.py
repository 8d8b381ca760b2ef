"""The courier against real PostgreSQL and a real (in-process) SMTP server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from identity_service.adapters.postgres.outbox import PostgresOutbox
from identity_service.adapters.postgres.outbox_notices import PostgresMailNotices
from identity_service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from identity_service.adapters.smtp.mailer import SmtpMailer
from identity_service.bootstrap import build_courier
from identity_service.domain.mail import MailKind, OutgoingMail
from identity_service.service.courier import Courier, CourierConfig
from identity_service.service.ports import OutboxMessage, UnitOfWork
from tests.integration.identity_mail.mail_helpers import (
    REFUSED_DOMAIN,
    SmtpServer,
    free_port,
    mail_settings,
    wait_for,
)

CONFIG = CourierConfig(poll_interval=0.05, batch_size=5, send_timeout=5, lease_seconds=30, max_attempts=4)


def mail(n: int, to: str | None = None) -> OutgoingMail:
    """A plain mail (a notice): code mails get their code from the courier (tests/.../identity_email)."""
    return OutgoingMail(
        to=to or f"student{n}@uni.example",
        subject=f"Message {n}",
        body=f"Your code is SECRET{n:04d}\n",
        kind=MailKind.EMAIL_CHANGE_NOTICE,
        school_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
    )


async def enqueue(pool: asyncpg.Pool, mails: Sequence[OutgoingMail]) -> list[int]:
    async with pool.acquire() as conn, conn.transaction():
        return [await PostgresOutbox(conn).enqueue(m) for m in mails]


async def count(pool: asyncpg.Pool, status: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox_messages WHERE status = $1", status))


async def make_due(pool: asyncpg.Pool) -> None:
    """Drive retries without sleeping: every waiting message becomes due now."""
    await pool.execute("UPDATE outbox_messages SET next_attempt_at = now() WHERE status = 'PENDING'")


@asynccontextmanager
async def running(courier: Courier) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(courier.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


def sent_metric(kind: str) -> float:
    return REGISTRY.get_sample_value("rollcall_emails_sent_total", {"kind": kind}) or 0.0


async def test_courier_sends_each_mail_once_with_headers_and_erases_bodies(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    before = sent_metric(MailKind.EMAIL_CHANGE_NOTICE)
    ids = await enqueue(pool, [mail(n) for n in range(12)])
    courier = build_courier(pool, mail_settings(mail_db_url, smtp.port), CONFIG)
    with capture_logs() as logs:
        async with running(courier):
            await wait_for(lambda: _count_is(pool, "SENT", 12), what="12 SENT")

    assert len(smtp.collector.messages) == 12
    assert set(smtp.collector.count_by_message_id().values()) == {1}
    by_subject = {m["Subject"]: m for m in smtp.collector.messages}
    first = by_subject["Message 0"]
    assert first["From"] == "careers@rollcall.example"
    assert first["To"] == "student0@uni.example"
    assert first.get_content_type() == "text/plain"
    assert "SECRET0000" in first.get_payload(decode=True).decode()
    rows = await pool.fetch("SELECT body, sent_at, attempts, locked_until FROM outbox_messages")
    assert all(r["body"] == "" and r["sent_at"] and r["attempts"] == 0 for r in rows)
    assert all(r["locked_until"] is None for r in rows)
    assert sent_metric(MailKind.EMAIL_CHANGE_NOTICE) - before == 12
    sent_logs = [e for e in logs if e["event"] == "email.sent"]
    assert sorted(e["outbox_id"] for e in sent_logs) == sorted(ids)
    text = repr(logs)
    assert "student0@uni.example" not in text and "SECRET" not in text


async def test_courier_wakes_on_notify_without_waiting_for_the_poll(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    slow_poll = CourierConfig(poll_interval=60, send_timeout=5, lease_seconds=30)
    courier = build_courier(pool, mail_settings(mail_db_url, smtp.port), slow_poll)
    async with running(courier):
        await wait_for(lambda: _listening(pool), what="the courier to LISTEN")
        await enqueue(pool, [mail(1)])
        await wait_for(lambda: _count_is(pool, "SENT", 1), timeout=10, what="the mail sent after NOTIFY")
    assert len(smtp.collector.messages) == 1


async def test_smtp_down_keeps_mail_pending_then_sends_each_once_when_back(
    pool: asyncpg.Pool, mail_db_url: str
) -> None:
    server = SmtpServer()  # not started: nothing listens on its port yet
    courier = build_courier(pool, mail_settings(mail_db_url, server.port), CONFIG)
    await enqueue(pool, [mail(n) for n in range(3)])

    assert await courier.run_once() == 3
    rows = await pool.fetch(
        "SELECT status, attempts, last_error, next_attempt_at > now() AS later FROM outbox_messages"
    )
    assert [(r["status"], r["attempts"], r["later"]) for r in rows] == [("PENDING", 1, True)] * 3
    assert all(r["last_error"] and "@" not in r["last_error"] for r in rows)
    assert await courier.run_once() == 0  # not due before its backoff

    await make_due(pool)
    assert await courier.run_once() == 3  # still down: second failure
    assert await pool.fetchval("SELECT min(attempts) FROM outbox_messages") == 2

    server.start()
    try:
        await make_due(pool)
        assert await courier.run_once() == 3
        assert await courier.run_once() == 0
        await make_due(pool)
        assert await courier.run_once() == 0
        assert await count(pool, "SENT") == 3
        assert sorted(server.collector.count_by_message_id().values()) == [1, 1, 1]

        server.stop()  # down again mid-life: a new mail waits, then goes out once the server is back
        await enqueue(pool, [mail(9)])
        assert await courier.run_once() == 1
        assert await count(pool, "PENDING") == 1
        server.start()
        await make_due(pool)
        assert await courier.run_once() == 1
        assert len(server.collector.messages) == 4
        assert set(server.collector.count_by_message_id().values()) == {1}
    finally:
        server.stop()


async def test_two_couriers_at_once_never_send_one_mail_twice(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    total = 150
    await enqueue(pool, [mail(n) for n in range(total)])
    settings = mail_settings(mail_db_url, smtp.port)
    pools = [await asyncpg.create_pool(mail_db_url, min_size=1, max_size=2) for _ in range(3)]
    try:
        couriers = [build_courier(p, settings, CONFIG) for p in pools]
        with capture_logs() as logs:
            async with running(couriers[0]), running(couriers[1]), running(couriers[2]):
                await wait_for(lambda: _count_is(pool, "SENT", total), timeout=60, what="all SENT")
    finally:
        for p in pools:
            await p.close()
    counts = smtp.collector.count_by_message_id()
    assert len(counts) == total
    assert set(counts.values()) == {1}
    assert len([e for e in logs if e["event"] == "email.sent"]) == total


class FlakyOutbox:
    """A unit-of-work factory whose outbox's first two claims fail as if the database had gone away."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.failures_left = 2
        self._pool = pool

    @asynccontextmanager
    async def __call__(self, **options: bool) -> AsyncIterator[UnitOfWork]:
        async with PostgresUnitOfWork(self._pool, **options) as uow:
            if self.failures_left:
                uow.outbox.claim_due = self._claim_fails  # type: ignore[method-assign]
            yield uow

    async def _claim_fails(self, limit: int, lease_seconds: float) -> list[OutboxMessage]:
        self.failures_left -= 1
        raise ConnectionResetError("database went away")


async def test_the_courier_keeps_running_through_database_errors(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    await enqueue(pool, [mail(1)])
    outbox = FlakyOutbox(pool)
    settings = mail_settings(mail_db_url, smtp.port)
    mailer, notices = SmtpMailer(settings, CONFIG.send_timeout), PostgresMailNotices(mail_db_url)
    courier = Courier(outbox, mailer, notices, settings.code_keys(), CONFIG)
    with capture_logs() as logs:
        async with running(courier):
            await wait_for(lambda: _count_is(pool, "SENT", 1), what="the mail sent after the errors")
    assert outbox.failures_left == 0
    assert [e["event"] for e in logs].count("courier.round_failed") == 2


async def test_mail_is_abandoned_after_the_bounded_attempts(pool: asyncpg.Pool, mail_db_url: str) -> None:
    courier = build_courier(pool, mail_settings(mail_db_url, free_port()), CONFIG)
    await enqueue(pool, [mail(1)])
    for attempt in range(1, CONFIG.max_attempts + 1):
        assert await courier.run_once() == 1, f"attempt {attempt}"
        await make_due(pool)
    row = await pool.fetchrow("SELECT status, attempts, body, last_error FROM outbox_messages")
    assert (row["status"], row["attempts"], row["body"]) == ("ABANDONED", CONFIG.max_attempts, "")
    assert "SMTPConnectError" in row["last_error"]
    assert await courier.run_once() == 0


async def test_permanently_refused_recipient_is_abandoned_at_once(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    courier = build_courier(pool, mail_settings(mail_db_url, smtp.port), CONFIG)
    await enqueue(pool, [mail(1, to=f"gone@{REFUSED_DOMAIN}"), mail(2)])
    with capture_logs() as logs:
        assert await courier.run_once() == 2
    rows = {r["to_address"]: r for r in await pool.fetch("SELECT * FROM outbox_messages")}
    refused = rows[f"gone@{REFUSED_DOMAIN}"]
    assert (refused["status"], refused["attempts"]) == ("ABANDONED", 1)
    assert refused["last_error"] == "SMTPRecipientsRefused: 550"
    assert rows["student2@uni.example"]["status"] == "SENT"
    assert f"gone@{REFUSED_DOMAIN}" not in repr(logs)


async def test_a_mail_that_cannot_be_composed_is_abandoned_at_once(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    courier = build_courier(pool, mail_settings(mail_db_url, smtp.port), CONFIG)
    await enqueue(pool, [mail(1, to="ann@uni.example\nBcc: all@uni.example")])
    assert await courier.run_once() == 1
    row = await pool.fetchrow("SELECT status, attempts, last_error FROM outbox_messages")
    assert (row["status"], row["attempts"]) == ("ABANDONED", 1)
    assert row["last_error"].startswith("ValueError") and "ann@" not in row["last_error"]
    assert smtp.collector.messages == []


async def test_a_lease_keeps_other_couriers_off_until_released_or_run_out(pool: asyncpg.Pool) -> None:
    [message_id] = await enqueue(pool, [mail(1)])
    [claimed] = await PostgresOutbox(pool).claim_due(10, lease_seconds=30)
    assert claimed.id == message_id and claimed.body.startswith("Your code")
    assert await PostgresOutbox(pool).claim_due(10, lease_seconds=30) == []
    await PostgresOutbox(pool).release([message_id])
    assert [m.id for m in await PostgresOutbox(pool).claim_due(10, lease_seconds=30)] == [message_id]
    await pool.execute("UPDATE outbox_messages SET locked_until = now() - interval '1 second'")
    assert [m.id for m in await PostgresOutbox(pool).claim_due(10, lease_seconds=30)] == [message_id]


async def test_discard_pending_abandons_the_users_unsent_mail_of_a_kind(pool: asyncpg.Pool) -> None:
    old, other = mail(1), mail(2)
    await enqueue(pool, [old, other])
    async with pool.acquire() as conn:
        assert await PostgresOutbox(conn).discard_pending(str(old.user_id), MailKind.EMAIL_CHANGE_NOTICE) == 1
    rows = {
        r["user_id"]: r for r in await pool.fetch("SELECT user_id::text, status, body FROM outbox_messages")
    }
    assert (rows[old.user_id]["status"], rows[old.user_id]["body"]) == ("ABANDONED", "")
    assert rows[other.user_id]["status"] == "PENDING"


async def test_a_stopping_courier_gives_back_the_mail_it_did_not_try(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    await enqueue(pool, [mail(n) for n in range(3)])
    stop = asyncio.Event()
    stop.set()
    courier = build_courier(pool, mail_settings(mail_db_url, smtp.port), CONFIG)
    assert await courier.run_once(stop) == 3
    assert smtp.collector.messages == []
    assert len(await PostgresOutbox(pool).claim_due(10, lease_seconds=30)) == 3


async def test_purge_finished_deletes_only_old_sent_or_abandoned_mail(pool: asyncpg.Pool) -> None:
    sent, pending = await enqueue(pool, [mail(1), mail(2)])
    await PostgresOutbox(pool).mark_sent(sent)
    await pool.execute("UPDATE outbox_messages SET created_at = now() - interval '40 days'")
    assert await PostgresOutbox(pool).purge_finished(timedelta(days=30)) == 1
    assert [r["id"] for r in await pool.fetch("SELECT id FROM outbox_messages")] == [pending]


async def test_enqueue_in_a_rolled_back_transaction_leaves_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await PostgresOutbox(conn).enqueue(mail(1))
                raise RuntimeError("use case failed")
    assert await pool.fetchval("SELECT count(*) FROM outbox_messages") == 0


async def _count_is(pool: asyncpg.Pool, status: str, expected: int) -> bool:
    return await count(pool, status) == expected


async def _listening(pool: asyncpg.Pool) -> bool:
    return bool(
        await pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND query LIKE 'LISTEN%'"""
        )
    )
