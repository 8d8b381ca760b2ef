"""Mail that cannot be redirected or gain headers (product.md Additions, "Not addresses").

The courier names the recipient in the SMTP envelope itself — exactly the stored address — and no
text of a school or person name, however encoded, becomes a header or a raw line break.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from identity_service.adapters.postgres.outbox import PostgresOutbox
from identity_service.bootstrap import build_courier
from identity_service.domain.mail import CODE_PLACEHOLDER, MailKind, OutgoingMail, change_notice, code_message
from identity_service.service.courier import Courier, CourierConfig
from tests.integration.identity_mail.mail_helpers import SmtpServer, mail_settings, wait_for

CONFIG = CourierConfig(poll_interval=0.05, batch_size=5, send_timeout=5, lease_seconds=30, max_attempts=2)
STANDARD_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
}
HOSTILE_NAMES = [
    "=?utf-8?q?Evil_U=0D=0AReply-To:_attacker@evil.example?=",  # an encoded CRLF + Reply-To
    "=?UTF-8?B?RXZpbA0KQmNjOiBhbGxAZXZpbC5leGFtcGxl?=",  # base64: "Evil\r\nBcc: all@evil.example"
    "Evil\r\nReply-To: attacker@evil.example",
    "Evil\nBcc: all@evil.example\x00",
    "Evil\u2028Reply-To: attacker@evil.example",
    "Ann =?utf-8?q?Lee=0AReply-To:_a@evil.example?= Lee",  # a person name holding an encoded word
]


async def enqueue(pool: asyncpg.Pool, mail: OutgoingMail) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await PostgresOutbox(conn).enqueue(mail)


def notice(to: str, subject: str, body: str = "Hello\n") -> OutgoingMail:
    return OutgoingMail(
        to=to, subject=subject, body=body, kind=MailKind.EMAIL_CHANGE_NOTICE, user_id=str(uuid.uuid4())
    )


@asynccontextmanager
async def running(courier: Courier) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(courier.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def _settled(pool: asyncpg.Pool, count: int) -> bool:
    done = await pool.fetchval("SELECT count(*) FROM outbox_messages WHERE status IN ('SENT', 'ABANDONED')")
    return int(done) == count


def header_lines(raw: bytes) -> list[str]:
    """The header section as logical lines (folded continuations joined)."""
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    lines: list[str] = []
    for line in head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += line
        else:
            lines.append(line)
    return lines


async def test_the_envelope_names_exactly_the_stored_address(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    to = f"ann.lee.{uuid.uuid4().hex[:6]}@uni.example"
    await enqueue(pool, notice(to, "Northfield University: your account"))
    courier = build_courier(pool, mail_settings(mail_db_url, smtp.port), CONFIG)
    async with running(courier):
        await wait_for(lambda: _settled(pool, 1), what="the mail sent")

    [(mail_from, rcpt_tos, _)] = smtp.collector.envelopes
    assert rcpt_tos == [to]
    assert mail_from == "careers@rollcall.example"


async def test_a_stored_address_list_is_never_sent_to(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    """A row whose address is header text naming several recipients: abandoned, nobody gets it."""
    await enqueue(pool, notice("ann@uni.example, attacker@evil.example", "Hi"))
    await enqueue(pool, notice("Ann <ann@uni.example>, attacker@evil.example", "Hi"))
    courier = build_courier(pool, mail_settings(mail_db_url, smtp.port), CONFIG)
    async with running(courier):
        await wait_for(lambda: _settled(pool, 2), what="both mails settled")

    assert smtp.collector.envelopes == []
    statuses = await pool.fetch("SELECT status FROM outbox_messages")
    assert {r["status"] for r in statuses} == {"ABANDONED"}


async def test_hostile_school_and_person_names_add_no_header(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    mails = []
    for n, name in enumerate(HOSTILE_NAMES):
        subject, body = code_message(name, f"new{n}@personal.example", "ABCD-EFGH", 24)
        mails.append(notice(f"code{n}@uni.example", subject, body))
        subject, body = change_notice(name, f"old{n}@uni.example", "n***@personal.example")
        mails.append(notice(f"notice{n}@uni.example", subject, body))
        # a subject stored as it came (PostgreSQL text holds no NUL)
        mails.append(notice(f"raw{n}@uni.example", name.replace("\x00", "")))
    for mail in mails:
        await enqueue(pool, mail)
    courier = build_courier(pool, mail_settings(mail_db_url, smtp.port), CONFIG)
    async with running(courier):
        await wait_for(lambda: _settled(pool, len(mails)), what="every mail settled")

    assert await pool.fetchval("SELECT count(*) FROM outbox_messages WHERE status = 'SENT'") == len(mails)
    assert sorted(rcpt for _, rcpts, _ in smtp.collector.envelopes for rcpt in rcpts) == sorted(
        m.to for m in mails
    )
    for _, [to], raw in smtp.collector.envelopes:
        lines = header_lines(raw)
        names = {line.split(":", 1)[0].strip().lower() for line in lines}
        assert names == STANDARD_HEADERS, (to, lines)
        assert not any("\r" in line or "\n" in line for line in lines)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["To"] == to
        assert parsed.get_all("Reply-To") is None and parsed.get_all("Bcc") is None
        for _, value in parsed.items():
            assert not any(c in str(value) for c in "\r\n\x00\u2028"), (to, value)
        assert "evil.example" not in {a.domain for a in parsed["To"].addresses}


async def test_a_code_mail_from_a_hostile_school_reads_back_as_typed(
    pool: asyncpg.Pool, mail_db_url: str, smtp: SmtpServer
) -> None:
    """What the reader sees is the literal text, not what an encoded word would decode to."""
    name = HOSTILE_NAMES[0]
    subject, _ = code_message(name, "new@personal.example", CODE_PLACEHOLDER, 24)
    await enqueue(pool, notice("ann@uni.example", subject))
    courier = build_courier(pool, mail_settings(mail_db_url, smtp.port), CONFIG)
    async with running(courier):
        await wait_for(lambda: _settled(pool, 1), what="the mail sent")

    [(_, _, raw)] = smtp.collector.envelopes
    shown = str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
    assert shown == subject
    assert "\r" not in shown and "\n" not in shown
