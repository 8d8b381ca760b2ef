"""Helpers of the email-change tests: driving the courier, reading the mails, proving no code leaks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import Message
from typing import Any

import asyncpg

from identity_service.service.courier import Courier, CourierConfig
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity.identity_support import Campus, IdentityClient, unique
from tests.integration.identity_mail.mail_helpers import SmtpServer, wait_for

CODE_SECRETS = ("current-code-secret-0123456789abcdef", "previous-code-secret-0123456789abcd")
COURIER_CONFIG = CourierConfig(
    poll_interval=0.05, batch_size=20, send_timeout=5, lease_seconds=30, max_attempts=8
)
CODE_IN_MAIL = re.compile(r"^\s+([A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4})\s*$", re.MULTILINE)
PASSWORD = "a brand new passphrase"


def personal(prefix: str = "me") -> str:
    return f"{unique(prefix)}@gmail.com"


async def deliver(courier: Courier) -> None:
    """Let the courier send everything that is due now (bounded)."""
    for _ in range(50):
        if await courier.run_once() == 0:
            return
    raise AssertionError("the courier kept finding mail")


@asynccontextmanager
async def courier_running(courier: Courier) -> AsyncIterator[None]:
    """The courier's own loop in the background, as ``identity-service courier`` runs it."""
    stop = asyncio.Event()
    task = asyncio.create_task(courier.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


def mails_to(server: SmtpServer, address: str) -> list[Message]:
    return [m for m in server.collector.messages if str(m["To"]).lower() == address.lower()]


def text_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def code_in(message: Message) -> str:
    found = CODE_IN_MAIL.findall(text_of(message))
    assert len(found) == 1, text_of(message)
    return str(found[0])


async def next_code(courier: Courier, server: SmtpServer, address: str) -> str:
    """Send what is due and return the code of the newest mail to ``address``."""
    before = len(mails_to(server, address))
    await deliver(courier)
    await wait_for(lambda: _more_mail(server, address, before), what=f"a code mail ({before + 1})")
    return code_in(mails_to(server, address)[-1])


async def _more_mail(server: SmtpServer, address: str, before: int) -> bool:
    return len(mails_to(server, address)) > before


def wrong(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return "AAAA-AAAA" if code != "AAAA-AAAA" else "BBBB-BBBB"


async def request_change(
    identity: IdentityClient,
    campus: Campus,
    student: res.User,
    new_email: str,
    *,
    disable_file_updates: bool = True,
    request_id: str = "",
) -> res.EmailChange:
    request = pb.RequestEmailChangeRequest(
        user_id=student.id,
        new_email=new_email,
        disable_file_updates=disable_file_updates,
        request_id=request_id,
    )
    return await identity.stub.RequestEmailChange(request, metadata=campus.staff_md)


def confirm(
    identity: IdentityClient, user_id: str, code: str, password: str = "", actor: str | None = None
) -> Any:
    request = pb.ConfirmEmailChangeRequest(user_id=user_id, code=code, new_password=password)
    return identity.stub.ConfirmEmailChange(request, metadata=identity.md("platform", actor))


def authenticate(identity: IdentityClient, email: str, password: str) -> Any:
    request = pb.AuthenticateRequest(email=email, password=password)
    return identity.stub.Authenticate(request, metadata=identity.md("platform"))


async def change_row(db: asyncpg.Pool, change_id: str) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM email_changes WHERE id = $1", change_id)
    assert row is not None
    return row


async def database_text(db: asyncpg.Pool) -> str:
    """Every row of every table of the database, as text (to search it for codes)."""
    tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    parts = []
    for table in tables:
        name = table["tablename"]
        rows = await db.fetch(f'SELECT t::text AS row FROM "{name}" t')  # noqa: S608 - names from pg_tables
        parts.extend(r["row"] for r in rows)
    return "\n".join(parts)


def code_forms(code: str) -> list[str]:
    plain = code.replace("-", "")
    return [code, plain, plain.lower(), code.lower()]
