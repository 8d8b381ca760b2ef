"""PostgresEmailChanges against real PostgreSQL: one PENDING change per user, bounded tries."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from identity_service.adapters.postgres.email_changes import PostgresEmailChanges
from identity_service.domain.email_changes import AttemptCount, EmailChangeState, NewEmailChange
from tests.integration.identity_mail.mail_helpers import make_student


def new_change(
    user_id: str, email: str = "Ann.Lee@Personal.example", file_updates_disabled: bool = False
) -> NewEmailChange:
    return NewEmailChange(
        id=str(uuid.uuid4()),
        user_id=user_id,
        new_email=email,
        code_hash="ab" * 32,
        expire_time=datetime.now(UTC) + timedelta(hours=24),
        requested_by=str(uuid.uuid4()),
        client="platform",
        file_updates_disabled=file_updates_disabled,
    )


async def test_insert_then_get_pending_for_update(pool: asyncpg.Pool) -> None:
    user_id = await make_student(pool)
    async with pool.acquire() as conn, conn.transaction():
        inserted = await PostgresEmailChanges(conn).open(new_change(user_id, file_updates_disabled=True))
        pending = await PostgresEmailChanges(conn).pending(user_id, for_update=True)
    assert pending == inserted
    assert inserted.state is EmailChangeState.PENDING
    assert inserted.new_email == "Ann.Lee@Personal.example"
    assert inserted.new_email_key == "ann.lee@personal.example"
    assert (inserted.attempts, inserted.max_attempts, inserted.file_updates_disabled) == (0, 5, True)
    assert inserted.close_time is None and inserted.client == "platform"
    async with pool.acquire() as conn:
        assert await PostgresEmailChanges(conn).pending(str(uuid.uuid4()), for_update=True) is None


async def test_a_user_has_at_most_one_pending_change(pool: asyncpg.Pool) -> None:
    user_id = await make_student(pool)
    async with pool.acquire() as conn:
        first = await PostgresEmailChanges(conn).open(new_change(user_id))
        with pytest.raises(asyncpg.UniqueViolationError):
            await PostgresEmailChanges(conn).open(new_change(user_id, "other@personal.example"))
        async with conn.transaction():  # how a new request replaces the old one
            closed = await PostgresEmailChanges(conn).close_pending(user_id, EmailChangeState.CANCELLED)
            second = await PostgresEmailChanges(conn).open(new_change(user_id, "other@personal.example"))
        assert closed is not None and closed.id == first.id
        assert closed.state is EmailChangeState.CANCELLED and closed.close_time is not None
        pending = await PostgresEmailChanges(conn).pending(user_id, for_update=True)
        assert pending is not None and pending.id == second.id
        changes = PostgresEmailChanges(conn)
        assert await changes.close_pending(str(uuid.uuid4()), EmailChangeState.CANCELLED) is None
        with pytest.raises(ValueError):
            await PostgresEmailChanges(conn).close_pending(user_id, EmailChangeState.PENDING)


async def test_concurrent_pending_inserts_for_one_user_leave_one(pool: asyncpg.Pool) -> None:
    user_id = await make_student(pool)

    async def attempt(n: int) -> bool:
        try:
            async with pool.acquire() as conn:
                await PostgresEmailChanges(conn).open(new_change(user_id, f"n{n}@personal.example"))
            return True
        except asyncpg.UniqueViolationError:
            return False

    results = await asyncio.gather(*(attempt(n) for n in range(10)))
    assert results.count(True) == 1
    assert await pool.fetchval("SELECT count(*) FROM email_changes WHERE user_id = $1", user_id) == 1


async def test_twenty_concurrent_tries_never_pass_max_attempts(pool: asyncpg.Pool) -> None:
    user_id = await make_student(pool)
    async with pool.acquire() as conn:
        change = await PostgresEmailChanges(conn).open(new_change(user_id))
    start = asyncio.Event()

    async def one_try() -> AttemptCount | None:
        async with pool.acquire() as conn:
            await start.wait()
            async with conn.transaction():
                counted = await PostgresEmailChanges(conn).count_attempt(change.id)
                await asyncio.sleep(0.01)  # hold the row lock a little, as a code check would
                return counted

    tasks = [asyncio.create_task(one_try()) for _ in range(20)]
    start.set()
    results = await asyncio.gather(*tasks)
    counted = [r for r in results if r is not None]
    assert sorted(r.attempts for r in counted) == [1, 2, 3, 4, 5]
    assert [r.is_last for r in sorted(counted, key=lambda r: r.attempts)] == [False] * 4 + [True]
    assert await pool.fetchval("SELECT attempts FROM email_changes WHERE id = $1", change.id) == 5


async def test_set_state_closes_only_a_pending_change_and_stops_tries(pool: asyncpg.Pool) -> None:
    user_id = await make_student(pool)
    async with pool.acquire() as conn:
        change = await PostgresEmailChanges(conn).open(new_change(user_id))
        assert await PostgresEmailChanges(conn).count_attempt(change.id) == AttemptCount(1, 5)
        assert await PostgresEmailChanges(conn).set_state(change.id, EmailChangeState.LOCKED) is True
        assert await PostgresEmailChanges(conn).set_state(change.id, EmailChangeState.CONFIRMED) is False
        assert await PostgresEmailChanges(conn).count_attempt(change.id) is None
        stored = await PostgresEmailChanges(conn).get(change.id)
        assert stored is not None and stored.state is EmailChangeState.LOCKED and stored.close_time
        assert await PostgresEmailChanges(conn).pending(user_id, for_update=True) is None


async def test_expire_overdue_and_cascade_on_user_delete(pool: asyncpg.Pool) -> None:
    user_id = await make_student(pool)
    async with pool.acquire() as conn:
        change = await PostgresEmailChanges(conn).open(new_change(user_id))
        await conn.execute(
            "UPDATE email_changes SET expire_time = now() - interval '1 minute' WHERE id = $1", change.id
        )
        assert await PostgresEmailChanges(conn).expire_overdue() >= 1
        stored = await PostgresEmailChanges(conn).get(change.id)
        assert stored is not None and stored.state is EmailChangeState.EXPIRED
        await conn.execute("DELETE FROM users WHERE id = $1", user_id)
        assert await PostgresEmailChanges(conn).get(change.id) is None


async def test_schema_refuses_an_unknown_state(pool: asyncpg.Pool) -> None:
    user_id = await make_student(pool)
    async with pool.acquire() as conn:
        change = await PostgresEmailChanges(conn).open(new_change(user_id))
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "UPDATE email_changes SET state = 'DONE', close_time = now() WHERE id = $1", change.id
        )
