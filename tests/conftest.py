"""Session-wide infrastructure: a fresh identity and import database and a queue prefix per run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack

import pytest

from tests.infra import (
    IDENTITY_MIGRATIONS,
    IMPORT_MIGRATIONS,
    find_postgres,
    find_rabbitmq,
    migrated_database,
    session_tag,
)

TAG = session_tag()


@pytest.fixture(scope="session")
def _containers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def pg_server_url(_containers: ExitStack) -> str:
    try:
        return find_postgres(_containers)
    except RuntimeError as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def amqp_url(_containers: ExitStack) -> str:
    try:
        return find_rabbitmq(_containers)
    except RuntimeError as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def amqp_prefix() -> str:
    return TAG


@pytest.fixture(scope="session")
async def identity_db_url(pg_server_url: str) -> AsyncIterator[str]:
    async with migrated_database(pg_server_url, f"{TAG}_identity", IDENTITY_MIGRATIONS) as url:
        yield url


@pytest.fixture(scope="session")
async def import_db_url(pg_server_url: str) -> AsyncIterator[str]:
    async with migrated_database(pg_server_url, f"{TAG}_import", IMPORT_MIGRATIONS) as url:
        yield url
