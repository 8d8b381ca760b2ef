"""Housekeeping the courier does now and then: close overdue email changes, drop old rate events
and finished outbox rows. Each step is bounded, so one round stays short on a large backlog; each
commits on its own (an autocommit unit of work)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from identity_service.service.ports import UnitOfWorkFactory


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


async def housekeep(new_uow: UnitOfWorkFactory, retention: Retention | None = None) -> HousekeepingDone:
    keep = retention or Retention()
    async with new_uow(autocommit=True) as uow:
        expired = await uow.email_changes.expire_overdue()
        events = await uow.rate_limits.purge(keep.rate_events)
        messages = await uow.outbox.purge_finished(keep.outbox)
    return HousekeepingDone(expired, events, messages)
