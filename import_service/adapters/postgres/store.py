"""The import database: repositories on the pool, and a unit of work for multi-statement changes."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg

from import_service.adapters.postgres.dead_letters_repo import DeadLettersRepository
from import_service.adapters.postgres.job_runs_repo import JobRunsRepository
from import_service.adapters.postgres.jobs_repo import JobsRepository
from import_service.adapters.postgres.results_repo import RowResultsRepository
from import_service.adapters.postgres.retries_repo import RetryRequestsRepository
from shared import pg

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *pg.UNREACHABLE,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.TransactionRollbackError,
)
"""Errors after which the same statement may succeed later: wait and retry, never fail a row (the
database being unreachable is ``shared.pg.UNREACHABLE``, the one list both services use)."""

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 7_002


async def migrate(dsn: str) -> list[str]:
    """Creates the database if missing and applies the import migrations (advisory lock 7_002)."""
    await pg.ensure_database(dsn)
    return await pg.migrate(dsn, MIGRATIONS, MIGRATION_LOCK_KEY)


class PostgresUnitOfWork:
    """One connection, one transaction; rolled back on leaving unless ``commit()`` was called."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: Any = None
        self._tx: Any = None

    async def __aenter__(self) -> PostgresUnitOfWork:
        self._conn = await self._pool.acquire()
        self._tx = self._conn.transaction()
        await self._tx.start()
        self.jobs = JobsRepository(self._conn)
        self.results = RowResultsRepository(self._conn)
        self.runs = JobRunsRepository(self._conn)
        self.retries = RetryRequestsRepository(self._conn)
        return self

    async def commit(self) -> None:
        await self._tx.commit()
        self._tx = None

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._tx is not None:
                await self._tx.rollback()
        finally:
            await self._pool.release(self._conn)


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.jobs = JobsRepository(pool)
        self.results = RowResultsRepository(pool)
        self.runs = JobRunsRepository(pool)
        self.dead_letters = DeadLettersRepository(pool)
        self.retries = RetryRequestsRepository(pool)

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool)

    async def ping(self) -> bool:
        return await pg.ping(self.pool)

    async def close(self) -> None:
        await self.pool.close()
