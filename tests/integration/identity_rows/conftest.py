"""A pool on the session's identity database, the unit of work on it, and a fresh school per test."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import asyncpg
import pytest

from identity_service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from identity_service.service.ports import UnitOfWorkFactory
from tests.integration.identity_rows.rows_support import Campus, new_campus


@pytest.fixture(scope="session")
async def rows_db(identity_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(identity_db_url, min_size=2, max_size=8)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def rows_factory(rows_db: asyncpg.Pool) -> UnitOfWorkFactory:
    return functools.partial(PostgresUnitOfWork, rows_db)


@pytest.fixture
async def campus(rows_db: asyncpg.Pool, rows_factory: UnitOfWorkFactory) -> Campus:
    return await new_campus(rows_db, rows_factory)
