"""The relay's side of an ``event_outbox`` table (both services' outboxes have its shape: identity
migration 0050, import migration 0007), on the leader's connection: unpublished rows by position,
stamping what the broker confirmed, purging what was published long enough ago."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from shared.events.outbox import OutboxRow

_PENDING = """
SELECT position, id::text AS id, type, subject, sequence, time, actor_id, client, kind, changed_fields,
       snapshot::text AS snapshot
FROM event_outbox WHERE published_time IS NULL ORDER BY position LIMIT $1
"""
_MARK = "UPDATE event_outbox SET published_time = now() WHERE position = ANY($1::bigint[])"
_PURGE = """DELETE FROM event_outbox WHERE position IN (
    SELECT position FROM event_outbox WHERE published_time < $1 ORDER BY published_time LIMIT $2)"""
_BACKLOG = "SELECT count(*) FROM event_outbox WHERE published_time IS NULL"


class RelayOutbox:
    """``shared.events.outbox.Outbox`` on the relay's leader connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def pending(self, limit: int) -> list[OutboxRow]:
        rows = await self._conn.fetch(_PENDING, limit)
        return [
            OutboxRow(
                position=row["position"],
                id=row["id"],
                type=row["type"],
                subject=row["subject"],
                sequence=row["sequence"],
                time=row["time"],
                actor_id=row["actor_id"] or "",
                client=row["client"],
                kind=row["kind"],
                changed_fields=tuple(row["changed_fields"] or ()),
                snapshot=json.loads(row["snapshot"]) if row["snapshot"] else None,
            )
            for row in rows
        ]

    async def mark_published(self, positions: Sequence[int]) -> None:
        if positions:
            await self._conn.execute(_MARK, list(positions))

    async def purge(self, published_before: datetime, limit: int) -> int:
        status = await self._conn.execute(_PURGE, published_before, limit)
        return int(status.split()[-1])

    async def backlog(self) -> int:
        return int(await self._conn.fetchval(_BACKLOG))
