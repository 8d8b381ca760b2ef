"""PostgresRateLimits against real PostgreSQL: sliding windows shared by every replica."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from identity_service.adapters.postgres.rate_limits import PostgresRateLimits, rate_key

HOUR = timedelta(hours=1)


async def test_allows_the_limit_then_refuses_without_recording(pool: asyncpg.Pool) -> None:
    key = rate_key("email_change.user", "u1")
    async with pool.acquire() as conn:
        limits = PostgresRateLimits(conn)
        assert [await limits.hit("email_change.user", "u1", HOUR, 3) for _ in range(5)] == [
            True,
            True,
            True,
            False,
            False,
        ]
        assert await conn.fetchval("SELECT count(*) FROM rate_events WHERE key = $1", key) == 3
        assert await limits.hit("email_change.user", "u2", HOUR, 3) is True


async def test_old_events_leave_the_window_and_are_purged(pool: asyncpg.Pool) -> None:
    subject = ("email_change.address", "ann@uni.example")
    key = rate_key(*subject)
    async with pool.acquire() as conn:
        limits = PostgresRateLimits(conn)
        await conn.executemany(
            "INSERT INTO rate_events (key, created_at) VALUES ($1, now() - interval '2 hours')", [(key,)] * 3
        )
        assert await limits.hit(*subject, HOUR, 1) is True  # the three old ones are outside the hour
        assert await limits.hit(*subject, HOUR, 1) is False
        assert await limits.hit(*subject, timedelta(hours=3), 4) is False  # ... but inside three hours
        assert await limits.purge(older_than=timedelta(minutes=90)) == 3
        assert await conn.fetchval("SELECT count(*) FROM rate_events WHERE key = $1", key) == 1


async def test_clear_forgets_the_subjects_events_for_sign_ins(pool: asyncpg.Pool) -> None:
    subject = ("sign_in.address", "u3")
    async with pool.acquire() as conn:
        limits = PostgresRateLimits(conn)
        assert [await limits.hit(*subject, HOUR, 5) for _ in range(6)] == [True] * 5 + [False]
        await limits.clear(*subject)
        assert await limits.hit(*subject, HOUR, 5) is True


async def test_concurrent_hits_from_many_connections_take_exactly_the_limit(pool: asyncpg.Pool) -> None:
    key = rate_key("email_change.user", "racy")
    start = asyncio.Event()

    async def one_hit() -> bool:
        async with pool.acquire() as conn:
            await start.wait()
            return await PostgresRateLimits(conn).hit("email_change.user", "racy", HOUR, 5)

    tasks = [asyncio.create_task(one_hit()) for _ in range(20)]
    start.set()
    results = await asyncio.gather(*tasks)
    assert results.count(True) == 5
    assert await pool.fetchval("SELECT count(*) FROM rate_events WHERE key = $1", key) == 5


async def test_a_hit_inside_a_rolled_back_transaction_is_forgotten(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        assert await PostgresRateLimits(conn).hit("email_change.user", "rolled-back", HOUR, 1) is True
        await tx.rollback()
        assert await PostgresRateLimits(conn).hit("email_change.user", "rolled-back", HOUR, 1) is True


def test_rate_key_is_bounded() -> None:
    assert rate_key("scope", "x" * 1000) == ("scope:" + "x" * 1000)[:400]
