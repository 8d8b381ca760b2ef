"""Settling received messages: ack once every row of a message is recorded, else dead-letter it.

A message's rows may travel in several batches; it is settled when the last of them is finished:
acknowledged when every part went well, dead-lettered with the reason of the first part that did
not (a row over the job's total: JOB_MISMATCH; an unexpected error: PROCESSING_FAILED). Outages
never reach here as failures: they are waited out. A message is never returned to the queue by the
settler, so nothing loops through broker redeliveries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from import_service import metrics
from import_service.service.ports import Delivery
from shared.logging import get_logger

log = get_logger("import.settle")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message goes to the dead-letter queue (``x-rollcall-dead-reason`` and detail)."""

    reason: str
    detail: str
    job_id: str | None = None


@dataclass(eq=False, slots=True)
class Tracked:
    """A received message and how many of its rows are still without a recorded outcome."""

    delivery: Delivery
    outstanding: int
    refusal: Refusal | None = None


DeadLetterer = Callable[[Delivery, Refusal], Awaitable[None]]
"""Sends a message to the dead-letter queue, records it, then settles it (``DeadLettering.send``)."""


@dataclass
class SettleStats:
    acked: int = 0
    requeued: int = 0
    dead_lettered: int = 0
    settle_errors: int = 0


class Settler:
    def __init__(self, dead_letter: DeadLetterer) -> None:
        self._dead_letter = dead_letter
        self.stats = SettleStats()
        self.in_flight = 0

    def track(self, delivery: Delivery, parts: int) -> Tracked:
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        return Tracked(delivery, parts)

    async def done(self, tracked: Tracked, refusal: Refusal | None = None) -> None:
        """One part (row) of the message is finished; settles the message after its last part."""
        await self.done_many([tracked], refusal)

    async def done_many(self, parts: Sequence[Tracked], refusal: Refusal | None = None) -> None:
        ready: list[Tracked] = []
        for tracked in parts:
            tracked.outstanding -= 1
            if tracked.refusal is None:
                tracked.refusal = refusal
            if tracked.outstanding == 0:
                ready.append(tracked)
        for tracked in ready:
            await self._settle(tracked)

    async def _settle(self, tracked: Tracked) -> None:
        self.in_flight -= 1
        metrics.IN_FLIGHT.dec()
        refusal = tracked.refusal
        try:
            if refusal is not None:
                await self._dead_letter(tracked.delivery, refusal)
                self.stats.dead_lettered += 1
            else:
                await tracked.delivery.ack()
                self.stats.acked += 1
        except Exception as exc:  # the channel closed: the broker redelivers, recorded rows are skipped
            self.stats.settle_errors += 1
            log.warning("import.settle_failed", error=type(exc).__name__)
