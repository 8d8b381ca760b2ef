"""RateLimiter against real PostgreSQL: sliding windows shared by every replica."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from identity_service.adapters.postgres.rate_limits import RateLimiter, rate_key

LIMITER = RateLimiter()
HOUR = timedelta(hours=1)


async def test_allows_the_limit_then_refuses_without_recording(pool: asyncpg.Pool) -> None:
    key = rate_key("email_change.user", "u1")
    async with pool.acquire() as conn:
        assert [await LIMITER.hit(conn, key, HOUR, 3) for _ in range(5)] == [True, True, True, False, False]
        assert await conn.fetchval("SELECT count(*) FROM rate_events WHERE key = $1", key) == 3
        assert await LIMITER.hit(conn, rate_key("email_change.user", "u2"), HOUR, 3) is True


async def test_old_events_leave_the_window_and_are_purged(pool: asyncpg.Pool) -> None:
    key = rate_key("email_change.address", "ann@uni.example")
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO rate_events (key, created_at) VALUES ($1, now() - interval '2 hours')", [(key,)] * 3
        )
        assert await LIMITER.is_limited(conn, key, HOUR, 3) is False
        assert await LIMITER.is_limited(conn, key, timedelta(hours=3), 3) is True
        assert await LIMITER.hit(conn, key, HOUR, 1) is True
        assert await LIMITER.hit(conn, key, HOUR, 1) is False
        assert await LIMITER.purge(conn, older_than=timedelta(minutes=90)) == 3
        assert await conn.fetchval("SELECT count(*) FROM rate_events WHERE key = $1", key) == 1


async def test_record_is_limited_and_clear_for_failed_sign_ins(pool: asyncpg.Pool) -> None:
    key = rate_key("sign_in.account", "u3")
    async with pool.acquire() as conn:
        for _ in range(4):
            assert await LIMITER.is_limited(conn, key, HOUR, 5) is False
            await LIMITER.record(conn, key)
        await LIMITER.record(conn, key)
        assert await LIMITER.is_limited(conn, key, HOUR, 5) is True
        await LIMITER.clear(conn, key)
        assert await LIMITER.is_limited(conn, key, HOUR, 5) is False


async def test_concurrent_hits_from_many_connections_take_exactly_the_limit(pool: asyncpg.Pool) -> None:
    key = rate_key("email_change.user", "racy")
    start = asyncio.Event()

    async def one_hit() -> bool:
        async with pool.acquire() as conn:
            await start.wait()
            return await LIMITER.hit(conn, key, HOUR, 5)

    tasks = [asyncio.create_task(one_hit()) for _ in range(20)]
    start.set()
    results = await asyncio.gather(*tasks)
    assert results.count(True) == 5
    assert await pool.fetchval("SELECT count(*) FROM rate_events WHERE key = $1", key) == 5


async def test_a_hit_inside_a_rolled_back_transaction_is_forgotten(pool: asyncpg.Pool) -> None:
    key = rate_key("email_change.user", "rolled-back")
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        assert await LIMITER.hit(conn, key, HOUR, 1) is True
        await tx.rollback()
        assert await LIMITER.hit(conn, key, HOUR, 1) is True


def test_rate_key_is_bounded() -> None:
    assert rate_key("scope", "x" * 1000) == ("scope:" + "x" * 1000)[:400]
