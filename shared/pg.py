"""PostgreSQL plumbing shared by both services: pools, database creation, the migration runner.

Migrations are numbered files, each applied once in its own transaction, in order, under a session
advisory lock so two ``migrate`` runs never overlap: plain SQL (``0001_schema.sql``), or, where a
value must be computed by the service's own code (a key column's backfill), a Python module
(``0030_identity_keys.py``) with ``async def apply(conn)``. A migration that finds data it must not
change raises ``MigrationRefused``: nothing of it is applied, and ``migrate`` exits naming the problem.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.logging import get_logger

log = get_logger("pg")
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.(sql|py)$")


class MigrationRefused(Exception):
    """Raised by a migration that must not go on (e.g. rows that would collide under a new key)."""


async def _end_open_transaction(conn: asyncpg.Connection) -> None:
    """What a returned connection needs here: our code keeps no session state on pooled connections
    (locks are transaction-scoped; LISTEN uses a connection of its own), so asyncpg's full reset
    (``RESET ALL; UNLISTEN *; ...``, one more round trip per use) is replaced by ending a transaction
    left open."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, command_timeout=60, reset=_end_open_transaction
    )
    assert pool is not None
    return pool


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def ensure_database(dsn: str) -> bool:
    """Create the database named by ``dsn`` if it does not exist. True when it was created."""
    name = database_name(dsn)
    if not re.fullmatch(r"[A-Za-z0-9_]{1,63}", name):
        raise SystemExit(f"database name {name!r} must be letters, digits and underscores")
    conn = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        log.info("database.created", database=name)
        return True
    finally:
        await conn.close()


def migration_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if _NAME.match(p.name))
    numbers = [p.name[:4] for p in files]
    if len(set(numbers)) != len(numbers):
        raise SystemExit(f"two migrations in {folder} share a number")
    return files


async def migrate(dsn: str, folder: Path, lock_key: int) -> list[str]:
    """Apply the migrations of ``folder`` not yet applied; returns the names applied now."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY,
                   sha256 text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["name"]: r["sha256"] for r in await conn.fetch("SELECT name, sha256 FROM schema_migrations")
        }
        for path in migration_files(folder):
            text = path.read_text()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != digest:
                    raise SystemExit(f"migration {path.name} was edited after it was applied")
                continue
            try:
                async with conn.transaction():
                    if path.suffix == ".py":
                        await _python_migration(path)(conn)
                    else:
                        await conn.execute(text)
                    await conn.execute(
                        "INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)", path.name, digest
                    )
            except MigrationRefused as refused:
                raise SystemExit(f"migration {path.name} refused, nothing of it applied: {refused}") from None
            applied_now.append(path.name)
            log.info("migration.applied", name=path.name)
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
        finally:
            await conn.close()
    return applied_now


def _python_migration(path: Path) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    """The ``apply`` coroutine function of a Python migration file."""
    spec = importlib.util.spec_from_file_location(f"rollcall_migration_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"migration {path.name} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    apply: Callable[[asyncpg.Connection], Awaitable[None]] = module.apply
    return apply


UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is one)
    TimeoutError,  # no pool connection or no answer in time
    asyncpg.PostgresConnectionError,  # cannot connect now, too many connections, ...
    asyncpg.InterfaceError,  # the connection was closed under us
    # the protocol lost its footing, seen when the server goes away mid-statement (F4)
    asyncpg.exceptions.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
)
"""The one list of errors that mean "the database could not be reached": both services wait them out."""


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` means the database could not be reached (try again later), not a bug."""
    return isinstance(error, UNREACHABLE)


async def ping(pool: asyncpg.Pool) -> bool:
    async with pool.acquire(timeout=2) as conn:
        return await conn.fetchval("SELECT 1") == 1
