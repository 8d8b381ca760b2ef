"""Helpers of the email-change and courier tests: waiting on conditions, an SMTP server, users."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from email import message_from_bytes
from email.message import Message
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller

from identity_service.domain.identity_keys import EmailIdentity
from shared.settings import Settings

REFUSED_DOMAIN = "refused.example"


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds (no bare sleeps as waits)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Collector:
    """aiosmtpd handler keeping every accepted message; refuses recipients at REFUSED_DOMAIN."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.endswith("@" + REFUSED_DOMAIN):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            raw = envelope.original_content or envelope.content
            self._messages.append(message_from_bytes(raw))
            self._envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), raw))
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages)

    @property
    def envelopes(self) -> list[tuple[str, list[str], bytes]]:
        """(MAIL FROM, RCPT TOs, the bytes received) of every accepted message."""
        with self._lock:
            return list(self._envelopes)

    def count_by_message_id(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in self.messages:
            key = str(message["Message-ID"])
            counts[key] = counts.get(key, 0) + 1
        return counts


class SmtpServer:
    """An in-process SMTP server on a fixed free port that can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.collector = Collector()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def mail_settings(db_url: str, smtp_port: int) -> Settings:
    return Settings(
        identity_database_url=db_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        mail_from="careers@rollcall.example",
    )


def _keys(email: str) -> tuple[str, str, bool]:
    identity = EmailIdentity.of(email)
    return identity.key, identity.skeleton, identity.plain


async def make_student(conn: asyncpg.Connection | asyncpg.Pool) -> str:
    """A school and an ACTIVE student in it; returns the student's id."""
    school_id, user_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute("INSERT INTO schools (id, name) VALUES ($1, 'Test University')", school_id)
    await conn.execute(
        """INSERT INTO users (id, user_type, status, school_id, username, email, origin,
               email_key, email_skeleton, email_plain, username_key)
           VALUES ($1, 'STUDENT', 'ACTIVE', $2, $3, $4, 'STUDENT_FILE', $5, $6, $7, $3)""",
        user_id,
        school_id,
        f"s{user_id.hex[:12]}",
        f"s{user_id.hex[:12]}@uni.example",
        *_keys(f"s{user_id.hex[:12]}@uni.example"),
    )
    return str(user_id)
