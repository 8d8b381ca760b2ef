"""SQL of the notification mails (``ports.Notifications``; migration 0046): new pending requests
waiting for a digest, each school's digest claim, and the import-job events already turned into mail.

- ``pending_digest_items``: one row per sign-up, written in its transaction; a digest deletes its
  school's rows in the transaction that queues it (a request deleted or merged away cascades).
- ``pending_digests``: a school's claim, locked ``FOR UPDATE SKIP LOCKED`` and moved to the digest's
  time in the transaction that queues it, so two couriers never both queue a school's digest and a
  school never gets two within the interval.
- ``notification_events``: the event ids of ``import_job.*`` events handled, the key that makes a
  delivery of the same event again queue nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

EVENT_ID_MAX = 200
EVENT_TYPE_MAX = 100
SUBJECT_MAX = 300


class PostgresNotifications:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def note_pending(self, school_id: str, user_id: str) -> None:
        await self._conn.execute(
            """INSERT INTO pending_digest_items (user_id, school_id) VALUES ($1, $2)
               ON CONFLICT (user_id) DO NOTHING""",
            user_id,
            school_id,
        )

    async def digest_schools(self, not_since: datetime, limit: int = 1000) -> list[str]:
        rows = await self._conn.fetch(
            """SELECT i.school_id FROM (SELECT DISTINCT school_id FROM pending_digest_items) AS i
               LEFT JOIN pending_digests d ON d.school_id = i.school_id
               WHERE d.school_id IS NULL OR d.last_digest_time <= $1
               ORDER BY i.school_id LIMIT $2""",
            not_since,
            limit,
        )
        return [str(r["school_id"]) for r in rows]

    async def claim_digest(self, school_id: str, not_since: datetime) -> bool:
        await self._conn.execute(
            "INSERT INTO pending_digests (school_id) VALUES ($1) ON CONFLICT (school_id) DO NOTHING",
            school_id,
        )
        claimed = await self._conn.fetchval(
            """SELECT true FROM pending_digests WHERE school_id = $1 AND last_digest_time <= $2
               FOR UPDATE SKIP LOCKED""",
            school_id,
            not_since,
        )
        return bool(claimed)

    async def take_new_pending(self, school_id: str) -> int:
        count = await self._conn.fetchval(
            """WITH taken AS (DELETE FROM pending_digest_items WHERE school_id = $1 RETURNING user_id)
               SELECT count(*) FROM taken JOIN users u ON u.id = taken.user_id
               WHERE u.status = 'PENDING'""",
            school_id,
        )
        return int(count)

    async def pending_summary(self, school_id: str) -> tuple[int, datetime | None]:
        row = await self._conn.fetchrow(
            """SELECT count(*) AS waiting, min(create_time) AS oldest FROM users
               WHERE school_id = $1 AND status = 'PENDING'""",
            school_id,
        )
        assert row is not None
        return int(row["waiting"]), row["oldest"]

    async def mark_digest(self, school_id: str, at: datetime, new_requests: int) -> None:
        await self._conn.execute(
            "UPDATE pending_digests SET last_digest_time = $2, last_count = $3 WHERE school_id = $1",
            school_id,
            at,
            new_requests,
        )

    async def oldest_pending(self) -> datetime | None:
        oldest: datetime | None = await self._conn.fetchval(
            "SELECT min(create_time) FROM users WHERE status = 'PENDING'"
        )
        return oldest

    async def claim_event(self, event_id: str, event_type: str, subject: str, mails: int) -> bool:
        inserted = await self._conn.fetchval(
            """INSERT INTO notification_events (event_id, type, subject, mails)
               VALUES ($1, left($2, $5), left($3, $6), $4)
               ON CONFLICT (event_id) DO NOTHING RETURNING true""",
            event_id[:EVENT_ID_MAX],
            event_type,
            subject,
            mails,
            EVENT_TYPE_MAX,
            SUBJECT_MAX,
        )
        return bool(inserted)

    async def purge_events(self, older_than: timedelta, limit: int = 10_000) -> int:
        status = await self._conn.execute(
            """DELETE FROM notification_events WHERE event_id IN (
                   SELECT event_id FROM notification_events
                   WHERE received_time < now() - $1::interval LIMIT $2)""",
            older_than,
            limit,
        )
        return int(status.split()[-1])
