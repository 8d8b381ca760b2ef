"""SQL of email changes (product rule 8): the one PENDING change per user, its tries and its end.

One class, bound to the unit of work's connection (``ports.EmailChanges``). ``new_email_key`` is always
``identity_keys.email_key(new_email)``, the same key the users' unique email index is built on.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from identity_service.domain.email_changes import (
    AttemptCount,
    EmailChangeRecord,
    EmailChangeState,
    NewEmailChange,
)
from identity_service.domain.identity_keys import email_key

# A constant, never input: the f-strings below interpolate only this list.
_COLUMNS = """id, user_id, new_email, new_email_key, code_hash, state, attempts, max_attempts,
    file_updates_disabled, requested_by, client, create_time, expire_time, close_time"""
_PENDING = f"SELECT {_COLUMNS} FROM email_changes WHERE user_id = $1 AND state = 'PENDING'"


class PostgresEmailChanges:
    """The ``email_changes`` table on one unit of work's connection (``ports.EmailChanges``)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def pending(self, user_id: str, *, for_update: bool = False) -> EmailChangeRecord | None:
        """The user's PENDING change (row-locked until the transaction ends with ``for_update``)."""
        query = _PENDING + " FOR UPDATE" if for_update else _PENDING
        row = await self._conn.fetchrow(query, user_id)
        return _record(row) if row else None

    async def latest(self, user_id: str) -> EmailChangeRecord | None:
        """The user's most recent change, whatever its state; None when the user never had one."""
        row = await self._conn.fetchrow(
            f"""SELECT {_COLUMNS} FROM email_changes WHERE user_id = $1
                ORDER BY create_time DESC, (state = 'PENDING') DESC LIMIT 1""",
            user_id,
        )
        return _record(row) if row else None

    async def issue_code(self, change_id: str, code_hash: str) -> bool:
        """Store the hash of a newly issued code on a change that is still PENDING and not expired,
        replacing any earlier code (the attempt count stays); False when the change is closed or
        overdue, so its code must not be sent."""
        status = await self._conn.execute(
            """UPDATE email_changes SET code_hash = $2
               WHERE id = $1 AND state = 'PENDING' AND expire_time > now()""",
            change_id,
            code_hash,
        )
        return bool(status == "UPDATE 1")

    async def get(self, change_id: str) -> EmailChangeRecord | None:
        row = await self._conn.fetchrow(f"SELECT {_COLUMNS} FROM email_changes WHERE id = $1", change_id)
        return _record(row) if row else None

    async def open(self, change: NewEmailChange) -> EmailChangeRecord:
        """Insert a PENDING change. Close the user's previous one first (``close_pending``): a second
        PENDING change for one user violates ``email_changes_one_pending``
        (``asyncpg.UniqueViolationError``)."""
        row = await self._conn.fetchrow(
            f"""INSERT INTO email_changes (id, user_id, new_email, new_email_key, code_hash, state,
                    max_attempts, file_updates_disabled, requested_by, client, expire_time)
                VALUES ($1, $2, $3, $10, $4, 'PENDING', $5, $6, $7, $8, $9)
                RETURNING {_COLUMNS}""",
            change.id,
            change.user_id,
            change.new_email,
            change.code_hash,
            change.max_attempts,
            change.file_updates_disabled,
            change.requested_by,
            change.client,
            change.expire_time,
            email_key(change.new_email),
        )
        assert row is not None
        return _record(row)

    async def close_pending(self, user_id: str, state: EmailChangeState) -> EmailChangeRecord | None:
        """Close the user's PENDING change in ``state`` (CANCELLED when replaced or cancelled, EXPIRED,
        LOCKED); returns the closed change, or None when nothing was pending."""
        _require_final(state)
        row = await self._conn.fetchrow(
            f"""UPDATE email_changes SET state = $2, close_time = now()
                WHERE user_id = $1 AND state = 'PENDING'
                RETURNING {_COLUMNS}""",
            user_id,
            str(state),
        )
        return _record(row) if row else None

    async def count_attempt(self, change_id: str) -> AttemptCount | None:
        """Count one confirmation try BEFORE the code is checked; None when no try is left (or the
        change is no longer PENDING).

        One atomic ``UPDATE``: concurrent tries queue on the row lock and each sees the count the
        previous one left, so the count never passes ``max_attempts`` however many race. Call it in a
        transaction that commits even when the code then turns out wrong, or the try is forgotten.
        """
        row = await self._conn.fetchrow(
            """UPDATE email_changes SET attempts = attempts + 1
               WHERE id = $1 AND state = 'PENDING' AND attempts < max_attempts
               RETURNING attempts, max_attempts""",
            change_id,
        )
        return AttemptCount(row["attempts"], row["max_attempts"]) if row else None

    async def set_state(self, change_id: str, state: EmailChangeState) -> bool:
        """Move a PENDING change to a final ``state``; False when it was not PENDING any more."""
        _require_final(state)
        status = await self._conn.execute(
            "UPDATE email_changes SET state = $2, close_time = now() WHERE id = $1 AND state = 'PENDING'",
            change_id,
            str(state),
        )
        return bool(status == "UPDATE 1")

    async def expire_overdue(self, limit: int = 1000) -> int:
        """Close PENDING changes whose code has expired (housekeeping); returns how many."""
        status = await self._conn.execute(
            """UPDATE email_changes SET state = 'EXPIRED', close_time = now()
               WHERE id IN (SELECT id FROM email_changes
                            WHERE state = 'PENDING' AND expire_time <= now()
                            LIMIT $1 FOR UPDATE SKIP LOCKED)""",
            limit,
        )
        return int(status.split()[-1])


def _require_final(state: EmailChangeState) -> None:
    if state == EmailChangeState.PENDING:
        raise ValueError("a change can only be closed in a final state")


def _record(row: Any) -> EmailChangeRecord:
    return EmailChangeRecord(
        id=str(row["id"]),
        user_id=str(row["user_id"]),
        new_email=row["new_email"],
        new_email_key=row["new_email_key"],
        code_hash=row["code_hash"],
        state=EmailChangeState(row["state"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        file_updates_disabled=row["file_updates_disabled"],
        requested_by=str(row["requested_by"]) if row["requested_by"] else None,
        client=row["client"],
        create_time=row["create_time"],
        expire_time=row["expire_time"],
        close_time=row["close_time"],
    )
