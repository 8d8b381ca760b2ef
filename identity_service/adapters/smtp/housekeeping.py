"""Housekeeping the courier does now and then: close overdue email changes, drop old rate events
and finished outbox rows. Each step is bounded, so one round stays short on a large backlog."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from identity_service.adapters.postgres.email_changes import EmailChangeRepository
from identity_service.adapters.postgres.outbox import OutboxRepository
from identity_service.adapters.postgres.rate_limits import RateLimiter


@dataclass(frozen=True)
class Retention:
    """How long finished outbox rows and rate events are kept (longer than any rate window)."""

    outbox: timedelta = timedelta(days=7)
    rate_events: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class HousekeepingDone:
    expired_changes: int
    purged_rate_events: int
    purged_messages: int


async def housekeep(pool: asyncpg.Pool, retention: Retention | None = None) -> HousekeepingDone:
    keep = retention or Retention()
    async with pool.acquire() as conn:
        expired = await EmailChangeRepository().expire_overdue(conn)
        events = await RateLimiter().purge(conn, keep.rate_events)
        messages = await OutboxRepository().purge_finished(conn, keep.outbox)
    return HousekeepingDone(expired, events, messages)
