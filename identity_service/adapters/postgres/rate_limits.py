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


class PostgresRateLimits:
    """The ``rate_events`` table on one unit of work's connection (``ports.RateLimits``); an event is
    counted under ``rate_key(scope, subject)``."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def hit(self, scope: str, subject: str, window: timedelta, limit: int) -> bool:
        """Record one event if fewer than ``limit`` happened within ``window``: True when recorded
        (allowed), False when over the limit (nothing recorded)."""
        key = rate_key(scope, subject)
        async with self._conn.transaction():
            await self._lock(key)
            if await self._count(key, window) >= limit:
                return False
            await self._conn.execute("INSERT INTO rate_events (key) VALUES ($1)", key)
            return True

    async def clear(self, scope: str, subject: str) -> None:
        """Forget every event of the subject (e.g. after a successful sign-in)."""
        await self._conn.execute("DELETE FROM rate_events WHERE key = $1", rate_key(scope, subject))

    async def purge(self, older_than: timedelta, limit: int = 10_000) -> int:
        """Delete up to ``limit`` events older than ``older_than`` (longer than any window in use);
        returns how many were deleted."""
        status = await self._conn.execute(
            """DELETE FROM rate_events WHERE ctid IN (
                   SELECT ctid FROM rate_events
                   WHERE created_at < clock_timestamp() - $1::interval LIMIT $2)""",
            older_than,
            limit,
        )
        return int(status.split()[-1])

    async def _lock(self, key: str) -> None:
        await self._conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_NAMESPACE, key)

    async def _count(self, key: str, window: timedelta) -> int:
        count = await self._conn.fetchval(
            """SELECT count(*) FROM rate_events
               WHERE key = $1 AND created_at > clock_timestamp() - $2::interval""",
            key,
            window,
        )
        return int(count)
