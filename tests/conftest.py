"""Session-wide infrastructure: a fresh identity and import database and a queue prefix per run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import pytest

from shared.pg import migrate, with_database
from tests.infra import find_postgres, find_rabbitmq, session_tag

ROOT = Path(__file__).resolve().parent.parent
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


async def _fresh_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def identity_db_url(pg_server_url: str) -> AsyncIterator[str]:
    name = f"{TAG}_identity"
    url = await _fresh_database(pg_server_url, name)
    await migrate(url, ROOT / "identity_service/adapters/postgres/migrations", lock_key=7_001)
    yield url
    await _drop_database(pg_server_url, name)


@pytest.fixture(scope="session")
async def import_db_url(pg_server_url: str) -> AsyncIterator[str]:
    name = f"{TAG}_import"
    url = await _fresh_database(pg_server_url, name)
    await migrate(url, ROOT / "import_service/adapters/postgres/migrations", lock_key=7_002)
    yield url
    await _drop_database(pg_server_url, name)
