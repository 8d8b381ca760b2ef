"""The event outbox (migration 0050): written with every audited change, read by the relay.

``PostgresEventOutbox.enqueue`` is called by the audit append in the same transaction: one
statement numbers each subject's events (``event_sequences``, rows locked in subject order) and
inserts them with the user or school as the transaction sees it right after the change (the same
columns the services read — never a password hash). ``RelayOutbox`` is the relay's side on its
leader connection (``shared.events.pg_outbox``, the same for both services' outboxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from identity_service.adapters.postgres.schools import _COLUMNS as SCHOOL_COLUMNS
from identity_service.adapters.postgres.user_rows import USER_COLUMNS
from identity_service.domain.events import ChangeEvent
from shared.events.pg_outbox import RelayOutbox

__all__ = ["PostgresEventOutbox", "RelayOutbox", "enqueue_args", "enqueue_sql", "snapshot_row"]


def enqueue_sql(first: int = 1, before: str = "") -> str:
    """The enqueue statement with its seven arrays as ``$first`` … ``$first+6``; ``before`` is a
    data-modifying CTE to run in the same statement (the audit append: one round trip for both)."""
    p = [f"${first + i}" for i in range(7)]
    lead = f"WITH {before}, e AS" if before else "WITH e AS"
    return f"""
{lead} (
    SELECT * FROM unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[], {p[4]}::text[],
                         {p[5]}::text[], {p[6]}::text[])
        WITH ORDINALITY AS t(type, subject, kind, school_id, changed, actor_id, client, n)
), counted AS (
    SELECT subject, count(*)::bigint AS n FROM e GROUP BY subject
), numbered AS (
    INSERT INTO event_sequences AS s (subject, last)
    SELECT subject, n FROM counted ORDER BY subject
    ON CONFLICT (subject) DO UPDATE SET last = s.last + excluded.last
    RETURNING subject, last
)
INSERT INTO event_outbox (type, subject, sequence, actor_id, client, kind, changed_fields, snapshot)
SELECT e.type, e.subject, x.last - c.n + row_number() OVER (PARTITION BY e.subject ORDER BY e.n),
       NULLIF(e.actor_id, ''), e.client, e.kind,
       COALESCE(string_to_array(NULLIF(e.changed, ''), ','), '{{}}'),
       CASE e.kind
           WHEN 'user' THEN (SELECT to_jsonb(u) FROM (SELECT {USER_COLUMNS} FROM users
                                                    WHERE id = e.subject::uuid) AS u)
           WHEN 'school' THEN (SELECT to_jsonb(sc) FROM (SELECT {SCHOOL_COLUMNS} FROM schools
                                                        WHERE id = e.subject::uuid) AS sc)
           ELSE jsonb_build_object('user_id', e.subject, 'school_id', NULLIF(e.school_id, ''))
       END
FROM e JOIN counted c USING (subject) JOIN numbered x USING (subject)
ORDER BY e.n
"""


_ENQUEUE = enqueue_sql()


class PostgresEventOutbox:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def enqueue(self, events: Sequence[Queued]) -> None:
        """Writes (event, actor id, client, school id) tuples, numbered per subject, in this order."""
        if events:
            await self._conn.execute(_ENQUEUE, *enqueue_args(events))


Queued = tuple[ChangeEvent, str | None, str, str | None]
"""An event to write: (event, actor id, client, school id)."""


def enqueue_args(events: Sequence[Queued]) -> tuple[list[str], ...]:
    """The seven arrays of ``enqueue_sql``."""
    return (
        [e.type.value for e, _, _, _ in events],
        [e.subject for e, _, _, _ in events],
        [e.kind.value for e, _, _, _ in events],
        [school or "" for _, _, _, school in events],
        [",".join(e.changed_fields) for e, _, _, _ in events],
        [actor or "" for _, actor, _, _ in events],
        [client for _, _, client, _ in events],
    )


def snapshot_row(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's JSON values as the row mappers expect them (timestamps as datetimes)."""
    row = dict(snapshot)
    for name in ("create_time", "update_time"):
        if isinstance(row.get(name), str):
            row[name] = datetime.fromisoformat(row[name])
    return row
