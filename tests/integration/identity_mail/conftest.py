"""Fixtures of the email-change and courier tests: an own migrated database and an SMTP server.

The courier tests need an outbox nobody else writes to, so this folder gets its own database
(migrated from the identity migrations like ``identity_db_url``) instead of sharing the session's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.infra import IDENTITY_MIGRATIONS, migrated_database
from tests.integration.identity_mail.mail_helpers import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def mail_db_url(pg_server_url: str) -> AsyncIterator[str]:
    name = f"rctest_mail_{uuid.uuid4().hex[:10]}"
    async with migrated_database(pg_server_url, name, IDENTITY_MIGRATIONS) as url:
        yield url


@pytest.fixture
async def pool(mail_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(mail_db_url, min_size=1, max_size=25)
    assert created is not None
    await created.execute("TRUNCATE outbox_messages, rate_events")
    yield created
    await created.close()
