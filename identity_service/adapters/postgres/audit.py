"""The audit_events table: append and read only (the database refuses UPDATE, DELETE, TRUNCATE).

Appending also writes each change's event to the outbox (``domain.events.change_event``,
``events.PostgresEventOutbox``) in the same transaction: one more statement per append."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from identity_service.adapters.postgres.events import PostgresEventOutbox, enqueue_args, enqueue_sql
from identity_service.domain.events import ChangeEvent, change_event
from identity_service.service.models import AuditEvent, NewAuditEvent
from shared import json_text

_COLUMNS = "id, time, actor_id, client, action, user_id, school_id, details"
# A batch of events in one statement (the student file's); ids are given in the events' order.
_APPEND_MANY = """INSERT INTO audit_events (actor_id, client, action, user_id, school_id, details)
    SELECT v.actor_id, v.client, v.action, v.user_id, v.school_id, v.details::jsonb
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::text[]) WITH ORDINALITY
        AS v(actor_id, client, action, user_id, school_id, details, n)
    ORDER BY v.n"""
# The same append with its events, one statement (the student file's batch keeps its round trips).
_APPEND_MANY_WITH_EVENTS = enqueue_sql(7, before=f"audit AS ({_APPEND_MANY} RETURNING 1)")


class PostgresAudit:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._outbox = PostgresEventOutbox(conn)

    async def append(self, event: NewAuditEvent) -> None:
        await self._conn.execute(
            """INSERT INTO audit_events (actor_id, client, action, user_id, school_id, details)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb)""",
            event.actor_id,
            event.client,
            event.action,
            event.user_id,
            event.school_id,
            json_text.with_str_fallback(event.details),
        )
        await self._outbox.enqueue(_changes([event]))

    async def append_many(self, events: Sequence[NewAuditEvent]) -> None:
        if not events:
            return
        audit = (
            [e.actor_id for e in events],
            [e.client for e in events],
            [e.action for e in events],
            [e.user_id for e in events],
            [e.school_id for e in events],
            [json_text.with_str_fallback(e.details) for e in events],
        )
        changes = _changes(events)
        if changes:
            await self._conn.execute(_APPEND_MANY_WITH_EVENTS, *audit, *enqueue_args(changes))
        else:
            await self._conn.execute(_APPEND_MANY, *audit)

    async def list(
        self, school_id: str | None, user_id: str | None, before_id: int | None, limit: int
    ) -> list[AuditEvent]:
        conditions: list[str] = []
        args: list[Any] = []
        for condition, value in (("school_id = ", school_id), ("user_id = ", user_id), ("id < ", before_id)):
            if value is not None:
                args.append(value)
                conditions.append(f"{condition}${len(args)}")
        where = " AND ".join(conditions) or "true"
        args.append(limit)
        rows = await self._conn.fetch(
            # S608: only fixed fragments are joined; every value is a $n parameter
            f"SELECT {_COLUMNS} FROM audit_events WHERE {where} ORDER BY id DESC LIMIT ${len(args)}",
            *args,
        )
        return [_event(row) for row in rows]


def _changes(events: Sequence[NewAuditEvent]) -> list[tuple[ChangeEvent, str | None, str, str | None]]:
    found = []
    for e in events:
        change = change_event(e.action, e.user_id, e.school_id, e.details)
        if change is not None:
            found.append((change, e.actor_id, e.client, e.school_id))
    return found


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        time=row["time"],
        actor_id=str(row["actor_id"]) if row["actor_id"] else None,
        client=row["client"],
        action=row["action"],
        user_id=str(row["user_id"]) if row["user_id"] else None,
        school_id=str(row["school_id"]) if row["school_id"] else None,
        details=json.loads(row["details"]),
    )
