"""The one unit of work: a pool connection, one transaction, every repository bound to it.

Every identity use case (RPCs, ApplyStudentRows, the courier) opens it through the service layer's
``UnitOfWorkFactory`` (``ports``); this is the only place a transaction is started or ended.
"""

from __future__ import annotations

import contextlib
from types import TracebackType

import asyncpg

from identity_service.adapters.postgres.audit import PostgresAudit
from identity_service.adapters.postgres.email_changes import PostgresEmailChanges
from identity_service.adapters.postgres.idempotency import PostgresIdempotency
from identity_service.adapters.postgres.notifications import PostgresNotifications
from identity_service.adapters.postgres.outbox import PostgresOutbox
from identity_service.adapters.postgres.rate_limits import PostgresRateLimits
from identity_service.adapters.postgres.schools import PostgresSchools
from identity_service.adapters.postgres.student_file import PostgresStudentFile
from identity_service.adapters.postgres.undo import PostgresJobUndos
from identity_service.adapters.postgres.users import PostgresUsers
from identity_service.service.ports import BatchConflict, BatchRefused
from shared.grpc_kit.metrics import DB_POOL_IN_USE
from shared.pg import is_unreachable

ACQUIRE_TIMEOUT_SECONDS = 10.0
_IN_USE = DB_POOL_IN_USE.labels("identity")  # the child, looked up once (labels() takes a lock)
_CONFLICTS = (
    asyncpg.UniqueViolationError,
    asyncpg.ExclusionViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


class PostgresUnitOfWork:
    """``async with PostgresUnitOfWork(pool) as uow``: commits on a clean exit, else rolls back.

    With ``read_only=True`` or ``autocommit=True`` no transaction is opened: a use case that only reads
    pays no BEGIN/COMMIT round trips, and the courier's bookkeeping commits statement by statement.
    With ``batch=True`` a refusal of the database (in a statement or at commit) leaves as
    ``BatchConflict`` / ``BatchRefused`` (``ports.UnitOfWorkFactory``), an outage as it is."""

    schools: PostgresSchools
    users: PostgresUsers
    audit: PostgresAudit
    idempotency: PostgresIdempotency
    email_changes: PostgresEmailChanges
    outbox: PostgresOutbox
    rate_limits: PostgresRateLimits
    student_file: PostgresStudentFile
    undos: PostgresJobUndos
    notifications: PostgresNotifications

    def __init__(
        self, pool: asyncpg.Pool, *, read_only: bool = False, autocommit: bool = False, batch: bool = False
    ) -> None:
        self._pool = pool
        self._in_transaction = not (read_only or autocommit)
        self._batch = batch
        self._conn: asyncpg.Connection | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None

    async def __aenter__(self) -> PostgresUnitOfWork:
        # An idle connection is handed over at once (asyncpg's queue hands out live ones first), so
        # the acquire timeout (a timer armed and cancelled: ~9 µs, a sixth of a GetUser's CPU) is
        # only armed when the call may have to wait for one.
        timeout = None if self._pool.get_idle_size() else ACQUIRE_TIMEOUT_SECONDS
        conn = await self._pool.acquire(timeout=timeout)
        _IN_USE.inc()
        try:
            if self._in_transaction:
                self._transaction = conn.transaction()
                await self._transaction.start()
        except BaseException as error:
            await self._release(conn)
            self._raise_translated(error)
            raise
        self._conn = conn
        self.schools = PostgresSchools(conn)
        self.users = PostgresUsers(conn)
        self.audit = PostgresAudit(conn)
        self.idempotency = PostgresIdempotency(conn)
        self.email_changes = PostgresEmailChanges(conn)
        self.outbox = PostgresOutbox(conn)
        self.rate_limits = PostgresRateLimits(conn)
        self.student_file = PostgresStudentFile(conn)
        self.undos = PostgresJobUndos(conn)
        self.notifications = PostgresNotifications(conn)
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
                try:
                    await self._transaction.commit()
                except BaseException as failure:
                    self._raise_translated(failure)
                    raise
            elif self._transaction is not None:
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await self._transaction.rollback()  # a broken connection is discarded by the pool
        finally:
            await self._release(conn)
        if error is not None:
            self._raise_translated(error)

    def _raise_translated(self, error: BaseException) -> None:
        """In a batch unit of work, raise what a refusal of the database means; else return."""
        if not self._batch or not isinstance(error, asyncpg.PostgresError):
            return
        if isinstance(error, _CONFLICTS):
            raise BatchConflict(f"{type(error).__name__}: {error}") from error
        if not is_unreachable(error):
            raise BatchRefused(str(getattr(error, "sqlstate", "") or "?")) from error

    async def _release(self, conn: asyncpg.Connection) -> None:
        _IN_USE.dec()
        await self._pool.release(conn, timeout=ACQUIRE_TIMEOUT_SECONDS)
