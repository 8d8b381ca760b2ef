"""SQL of the mail outbox: use cases enqueue in their transaction, couriers claim, send and settle.

A courier *claims* due messages by taking a lease (``locked_until``) on them with
``FOR UPDATE SKIP LOCKED``: several couriers never hold the same message at once, and a courier that
dies mid-send loses its lease when it runs out, so the message is tried again. A message's body is
erased once it is SENT or ABANDONED: the outbox is not an archive. A code mail's body never holds
its code, only ``mail.CODE_PLACEHOLDER``, and names its change (``email_change_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import asyncpg

from identity_service.domain.mail import OutgoingMail
from identity_service.service.ports import OutboxMessage

NOTIFY_CHANNEL = "outbox"
ERROR_MAX = 500
Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection

# A constant, never input: the only text interpolated into SQL here.
_CLAIMED_COLUMNS = ", ".join(
    f"m.{c}"
    for c in (
        "id",
        "created_at",
        "to_address",
        "subject",
        "body",
        "kind",
        "school_id",
        "user_id",
        "attempts",
        "email_change_id",
    )
)


class PostgresOutbox:
    """The ``outbox_messages`` table on one unit of work's connection (``ports.Outbox``); the courier
    uses an autocommit unit of work, so each of its calls commits on its own."""

    def __init__(self, conn: Executor) -> None:
        self._conn = conn  # a pool works too for every method but ``enqueue`` (one transaction)

    async def enqueue(self, mail: OutgoingMail) -> int:
        """Add ``mail``, due now, in the caller's transaction; returns its id. A ``NOTIFY outbox``
        goes with it: PostgreSQL delivers it at commit (not at all on rollback), waking couriers."""
        message_id = await self._conn.fetchval(
            """INSERT INTO outbox_messages
                   (to_address, subject, body, kind, school_id, user_id, email_change_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
            mail.to,
            mail.subject,
            mail.body,
            mail.kind,
            mail.school_id,
            mail.user_id,
            mail.email_change_id,
        )
        await self._conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        return int(message_id)

    async def enqueue_many(self, mails: Sequence[OutgoingMail]) -> None:
        """Add ``mails``, due now, in the caller's transaction, in one statement (with its NOTIFY)."""
        if not mails:
            return
        await self._conn.execute(
            """WITH added AS (
                   INSERT INTO outbox_messages
                       (to_address, subject, body, kind, school_id, user_id, email_change_id)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[],
                                        $6::uuid[], $7::uuid[])
                   RETURNING id)
               SELECT pg_notify($8, '') FROM (SELECT 1 FROM added LIMIT 1) AS one""",
            [m.to for m in mails],
            [m.subject for m in mails],
            [m.body for m in mails],
            [m.kind for m in mails],
            [m.school_id for m in mails],
            [m.user_id for m in mails],
            [m.email_change_id for m in mails],
            NOTIFY_CHANNEL,
        )

    async def claim_due(self, limit: int, lease_seconds: float) -> list[OutboxMessage]:
        """Lease up to ``limit`` PENDING messages that are due and not leased by anyone, oldest due
        first, for ``lease_seconds``; returns them."""
        rows = await self._conn.fetch(
            f"""WITH due AS (
                    SELECT id FROM outbox_messages
                    WHERE status = 'PENDING' AND next_attempt_at <= now()
                      AND (locked_until IS NULL OR locked_until <= now())
                    ORDER BY next_attempt_at, id
                    LIMIT $1
                    FOR UPDATE SKIP LOCKED)
                UPDATE outbox_messages m SET locked_until = now() + make_interval(secs => $2)
                FROM due WHERE m.id = due.id
                RETURNING {_CLAIMED_COLUMNS}""",
            limit,
            float(lease_seconds),
        )
        messages = [_message(r) for r in rows]
        messages.sort(key=lambda m: m.id)
        return messages

    async def mark_sent(self, message_id: int) -> None:
        """The server accepted the message: it is never sent again; its body is erased."""
        await self._conn.execute(
            """UPDATE outbox_messages
               SET status = 'SENT', sent_at = now(), body = '', locked_until = NULL, last_error = NULL
               WHERE id = $1 AND status = 'PENDING'""",
            message_id,
        )

    async def mark_failed(
        self, message_id: int, error: str, next_attempt_at: datetime, abandon: bool
    ) -> None:
        """Count a failed send. ``error`` must hold no address or code (``courier.describe_error``).
        With ``abandon`` the message is given up (ABANDONED, body erased), else retried at
        ``next_attempt_at``."""
        await self._conn.execute(
            """UPDATE outbox_messages
               SET attempts = attempts + 1, last_error = left($2, $5), next_attempt_at = $3,
                   locked_until = NULL,
                   status = CASE WHEN $4 THEN 'ABANDONED' ELSE status END,
                   body = CASE WHEN $4 THEN '' ELSE body END
               WHERE id = $1 AND status = 'PENDING'""",
            message_id,
            error,
            next_attempt_at,
            abandon,
            ERROR_MAX,
        )

    async def release(self, message_ids: Sequence[int]) -> None:
        """Give back leases on messages not tried (a courier stopping), so others take them now."""
        if message_ids:
            await self._conn.execute(
                "UPDATE outbox_messages SET locked_until = NULL WHERE id = ANY($1::bigint[]) "
                "AND status = 'PENDING'",
                list(message_ids),
            )

    async def discard_pending(self, user_id: str, kind: str) -> int:
        """Abandon the user's unsent messages of ``kind`` (e.g. the code mail of a change that was
        replaced or cancelled, so an outdated code is never delivered); returns how many.
        A message a courier is sending right now may still go out."""
        status = await self._conn.execute(
            """UPDATE outbox_messages
               SET status = 'ABANDONED', body = '', locked_until = NULL, last_error = 'discarded'
               WHERE user_id = $1 AND kind = $2 AND status = 'PENDING'""",
            user_id,
            kind,
        )
        return int(status.split()[-1])

    async def abandon(self, message_id: int, reason: str) -> None:
        """Give up a message without sending it (e.g. the code mail of a change that closed meanwhile);
        ``reason`` holds no address or code. Does not count as a failed send."""
        await self._conn.execute(
            """UPDATE outbox_messages
               SET status = 'ABANDONED', body = '', locked_until = NULL, last_error = left($2, $3)
               WHERE id = $1 AND status = 'PENDING'""",
            message_id,
            reason,
            ERROR_MAX,
        )

    async def purge_finished(self, older_than: timedelta, limit: int = 10_000) -> int:
        """Delete up to ``limit`` SENT or ABANDONED messages created more than ``older_than`` ago."""
        status = await self._conn.execute(
            """DELETE FROM outbox_messages WHERE id IN (
                   SELECT id FROM outbox_messages
                   WHERE status <> 'PENDING' AND created_at < now() - $1::interval LIMIT $2)""",
            older_than,
            limit,
        )
        return int(status.split()[-1])


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        created_at=row["created_at"],
        to_address=row["to_address"],
        subject=row["subject"],
        body=row["body"],
        kind=row["kind"],
        school_id=str(row["school_id"]) if row["school_id"] else None,
        user_id=str(row["user_id"]) if row["user_id"] else None,
        attempts=row["attempts"],
        email_change_id=str(row["email_change_id"]) if row["email_change_id"] else None,
    )
