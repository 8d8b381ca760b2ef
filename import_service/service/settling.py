"""Settling received messages: ack once every row of a message is recorded, else return it.

A message's rows may travel in several batches; it is acknowledged when the last of them is
recorded, and requeued (for redelivery, where recorded rows are skipped) if any of them failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from import_service import metrics
from import_service.service.ports import Delivery
from shared.logging import get_logger

log = get_logger("import.settle")


@dataclass(eq=False, slots=True)
class Tracked:
    """A received message and how many of its rows are still without a recorded outcome."""

    delivery: Delivery
    outstanding: int
    failed: bool = False


@dataclass
class SettleStats:
    acked: int = 0
    requeued: int = 0
    settle_errors: int = 0


class Settler:
    def __init__(self) -> None:
        self.stats = SettleStats()
        self.in_flight = 0

    def track(self, delivery: Delivery, parts: int) -> Tracked:
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        return Tracked(delivery, parts)

    async def done(self, tracked: Tracked, *, ok: bool) -> None:
        """One part (row) of the message is finished; settles the message after its last part."""
        tracked.outstanding -= 1
        tracked.failed = tracked.failed or not ok
        if tracked.outstanding == 0:
            await self._settle(tracked)

    async def done_many(self, parts: Sequence[Tracked], *, ok: bool) -> None:
        ready: list[Tracked] = []
        for tracked in parts:
            tracked.outstanding -= 1
            tracked.failed = tracked.failed or not ok
            if tracked.outstanding == 0:
                ready.append(tracked)
        for tracked in ready:
            await self._settle(tracked)

    async def _settle(self, tracked: Tracked) -> None:
        self.in_flight -= 1
        metrics.IN_FLIGHT.dec()
        try:
            if tracked.failed:
                await tracked.delivery.requeue()
                self.stats.requeued += 1
            else:
                await tracked.delivery.ack()
                self.stats.acked += 1
        except Exception as exc:  # the channel closed: the broker redelivers, recorded rows are skipped
            self.stats.settle_errors += 1
            log.warning("import.settle_failed", error=type(exc).__name__)
