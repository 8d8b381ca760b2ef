"""The events relay (issue 10): an outbox → the events exchange, in commit order, at least once.

Several replicas may run; one leads at a time (``Leadership``: PostgreSQL's advisory lock, held by
the leader's own connection, which it also reads and stamps the outbox through — if that connection
dies, leadership and the reads go together, so two relays never publish at once and a subject's
events are never reordered). The leader repeatedly takes the oldest unpublished rows by position,
publishes them (each subject's one after the other, confirmed by the broker) and only then stamps
them published; a failure anywhere publishes the whole batch again (duplicates keep their id).
Published rows older than the retention are purged a batch at a time. Outages of the broker or the
database are waited out: the relay never gives up and never skips a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg
from prometheus_client import Counter, Gauge

from shared.events.outbox import Outbox, OutboxRow
from shared.logging import get_logger
from shared.proto.rollcall.events.v1 import events_pb2 as pb

log = get_logger("events.relay")
PUBLISHED = Counter("rollcall_events_published_total", "Events the broker confirmed", ["source"])
BACKLOG = Gauge("rollcall_events_backlog", "Outbox rows not published yet (the leader's view)", ["source"])
LEADING = Gauge("rollcall_events_relay_leading", "1 while this relay is the leader", ["source"])
PURGE_EVERY_SECONDS = 60.0
PURGE_ROWS = 10_000

Leadership = Callable[[], AbstractAsyncContextManager[Outbox]]
"""Enters once this relay leads (waiting while another does); the outbox is read through the
leader's connection; leaving gives leadership up."""


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[pb.Event]) -> None: ...


@dataclass
class RelayConfig:
    batch: int = 500
    idle_seconds: float = 0.2
    retry_seconds: float = 1.0
    retention: timedelta = timedelta(days=7)


class Relay:
    def __init__(
        self,
        leadership: Leadership,
        publisher: EventPublisher,
        encode: Callable[[OutboxRow], pb.Event],
        source: str,
        config: RelayConfig | None = None,
    ) -> None:
        self._leadership = leadership
        self._publisher = publisher
        self._encode = encode
        self._source = source
        self._config = config or RelayConfig()
        self.leading = False
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Relays until ``stop`` is set, taking the lead whenever it is free."""
        while not stop.is_set():
            try:
                async with self._leadership() as outbox:
                    self._lead(True)
                    await self._relay(outbox, stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or the broker is away: wait, take the lead again
                log.warning("relay.interrupted", source=self._source, error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._config.retry_seconds)
            finally:
                self._lead(False)

    async def relay_once(self, outbox: Outbox) -> int:
        """One batch: publish the oldest unpublished rows, then stamp them; how many."""
        rows = await outbox.pending(self._config.batch)
        if not rows:
            return 0
        await self._publisher.publish([self._encode(row) for row in rows])
        await outbox.mark_published([row.position for row in rows])
        self.published += len(rows)
        PUBLISHED.labels(self._source).inc(len(rows))
        return len(rows)

    async def _relay(self, outbox: Outbox, stop: asyncio.Event) -> None:
        purged_at = 0.0
        while not stop.is_set():
            sent = await self.relay_once(outbox)
            if time.monotonic() - purged_at > PURGE_EVERY_SECONDS:
                purged_at = time.monotonic()
                before = datetime.now(UTC) - self._config.retention
                purged = await outbox.purge(before, PURGE_ROWS)
                BACKLOG.labels(self._source).set(await outbox.backlog())
                if purged:
                    log.info("relay.purged", source=self._source, rows=purged)
            if sent < self._config.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._config.idle_seconds)

    def _lead(self, leading: bool) -> None:
        if leading != self.leading:
            log.info("relay.leading" if leading else "relay.standing_by", source=self._source)
        self.leading = leading
        LEADING.labels(self._source).set(1 if leading else 0)


def advisory_leadership(
    dsn: str, lock_key: int, outbox: Callable[[asyncpg.Connection], Outbox], poll_seconds: float = 1.0
) -> Leadership:
    """Leadership by ``pg_try_advisory_lock(lock_key)`` on a connection of its own."""

    @contextlib.asynccontextmanager
    async def lead() -> AsyncIterator[Outbox]:
        # the lock holder names its process, so an operator (and the fault test) sees who leads
        conn = await asyncpg.connect(
            dsn, server_settings={"application_name": f"rollcall-relay:{os.getpid()}"}
        )
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):  # noqa: ASYNC110
                await asyncio.sleep(poll_seconds)  # another relay leads: ask again
            yield outbox(conn)
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)

    return lead
