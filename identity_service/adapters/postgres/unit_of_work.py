"""One asyncpg transaction per use case, with the repositories bound to its connection."""

from __future__ import annotations

import contextlib
from types import TracebackType

import asyncpg

from identity_service.adapters.postgres.audit import PostgresAudit
from identity_service.adapters.postgres.email_changes import PostgresEmailChanges
from identity_service.adapters.postgres.idempotency import PostgresIdempotency
from identity_service.adapters.postgres.outbox import PostgresOutbox
from identity_service.adapters.postgres.rate_limits import PostgresRateLimits
from identity_service.adapters.postgres.schools import PostgresSchools
from identity_service.adapters.postgres.users import PostgresUsers
from shared.grpc_kit.metrics import DB_POOL_IN_USE

ACQUIRE_TIMEOUT_SECONDS = 10.0


class PostgresUnitOfWork:
    """``async with PostgresUnitOfWork(pool) as uow``: commits on a clean exit, else rolls back.

    With ``read_only=True`` no transaction is opened: a use case that only reads pays no BEGIN/COMMIT
    round trips (its repositories must then not write)."""

    schools: PostgresSchools
    users: PostgresUsers
    audit: PostgresAudit
    idempotency: PostgresIdempotency
    email_changes: PostgresEmailChanges
    outbox: PostgresOutbox
    rate_limits: PostgresRateLimits

    def __init__(self, pool: asyncpg.Pool, *, read_only: bool = False) -> None:
        self._pool = pool
        self._read_only = read_only
        self._conn: asyncpg.Connection | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None

    async def __aenter__(self) -> PostgresUnitOfWork:
        conn = await self._pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS)
        DB_POOL_IN_USE.labels("identity").inc()
        try:
            if not self._read_only:
                self._transaction = conn.transaction()
                await self._transaction.start()
        except BaseException:
            await self._release(conn)
            raise
        self._conn = conn
        self.schools = PostgresSchools(conn)
        self.users = PostgresUsers(conn)
        self.audit = PostgresAudit(conn)
        self.idempotency = PostgresIdempotency(conn)
        self.email_changes = PostgresEmailChanges(conn)
        self.outbox = PostgresOutbox(conn)
        self.rate_limits = PostgresRateLimits(conn)
        return self

    @property
    def connection(self) -> asyncpg.Connection:
        """The transaction's connection, for repositories that take it per call."""
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        return self._conn

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._conn is not None
        conn, self._conn = self._conn, None
        try:
            if self._transaction is not None and kind is None:
                await self._transaction.commit()
            elif self._transaction is not None:
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await self._transaction.rollback()  # a broken connection is discarded by the pool
        finally:
            await self._release(conn)

    async def _release(self, conn: asyncpg.Connection) -> None:
        DB_POOL_IN_USE.labels("identity").dec()
        await self._pool.release(conn)
