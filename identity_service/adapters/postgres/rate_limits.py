"""Sliding-window rate limits kept in PostgreSQL, so every replica sees the same counts.

An event is one row of ``rate_events`` under a key (``email_change.user:<id>``,
``email_change.address:<email key>``, ``sign_in.account:<id>``). Counting and inserting happen under a
transaction-scoped advisory lock on the key, so two replicas racing on one key cannot both take the
last slot. Events live in the caller's transaction: an event recorded in a transaction that rolls
back is forgotten, so record failures (a wrong password) in a transaction that commits.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

# First half of the two-int advisory-lock key (the second is hashtext(key)); distinct from the
# single-bigint lock space the migration runner uses.
LOCK_NAMESPACE = 7_003
KEY_MAX = 400


def rate_key(scope: str, subject: str) -> str:
    """``rate_key("email_change.user", user_id)`` → ``email_change.user:<user_id>`` (at most 400 chars)."""
    return f"{scope}:{subject}"[:KEY_MAX]


class RateLimiter:
    """Counts events per key in a sliding window. Holds no state; one instance serves every connection."""

    async def hit(self, conn: asyncpg.Connection, key: str, window: timedelta, limit: int) -> bool:
        """Record one event for ``key`` if fewer than ``limit`` happened within ``window``: True when
        recorded (allowed), False when over the limit (nothing recorded)."""
        async with conn.transaction():
            await self._lock(conn, key)
            if await self._count(conn, key, window) >= limit:
                return False
            await conn.execute("INSERT INTO rate_events (key) VALUES ($1)", key)
            return True

    async def is_limited(self, conn: asyncpg.Connection, key: str, window: timedelta, limit: int) -> bool:
        """True when ``limit`` or more events of ``key`` happened within ``window`` (records nothing).
        For counting only failures: check with this first, ``record`` when the attempt fails."""
        return await self._count(conn, key, window) >= limit

    async def record(self, conn: asyncpg.Connection, key: str) -> None:
        """Record one event for ``key`` unconditionally (e.g. a failed sign-in)."""
        await conn.execute("INSERT INTO rate_events (key) VALUES ($1)", key)

    async def clear(self, conn: asyncpg.Connection, key: str) -> None:
        """Forget every event of ``key`` (e.g. after a successful sign-in)."""
        await conn.execute("DELETE FROM rate_events WHERE key = $1", key)

    async def purge(self, conn: asyncpg.Connection, older_than: timedelta, limit: int = 10_000) -> int:
        """Delete up to ``limit`` events older than ``older_than`` (longer than any window in use);
        returns how many were deleted."""
        status = await conn.execute(
            """DELETE FROM rate_events WHERE ctid IN (
                   SELECT ctid FROM rate_events
                   WHERE created_at < clock_timestamp() - $1::interval LIMIT $2)""",
            older_than,
            limit,
        )
        return int(status.split()[-1])

    async def _lock(self, conn: asyncpg.Connection, key: str) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, key)

    async def _count(self, conn: asyncpg.Connection, key: str, window: timedelta) -> int:
        count = await conn.fetchval(
            """SELECT count(*) FROM rate_events
               WHERE key = $1 AND created_at > clock_timestamp() - $2::interval""",
            key,
            window,
        )
        return int(count)


class PostgresRateLimits:
    """The rate limiter bound to one unit of work's connection (``ports.RateLimits``)."""

    def __init__(self, conn: asyncpg.Connection, limiter: RateLimiter | None = None) -> None:
        self._conn = conn
        self._limiter = limiter or RateLimiter()

    async def hit(self, scope: str, subject: str, window: timedelta, limit: int) -> bool:
        return await self._limiter.hit(self._conn, rate_key(scope, subject), window, limit)

    async def clear(self, scope: str, subject: str) -> None:
        await self._limiter.clear(self._conn, rate_key(scope, subject))
