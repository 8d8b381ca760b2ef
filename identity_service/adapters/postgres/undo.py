"""The SQL of undo (issue 9): one statement per step, on the unit of work's connection."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from identity_service.adapters.postgres.student_file import (
    changes_from_json,
    recorded_result,
    stored_student,
)
from identity_service.domain.student_file import RowOutcome, RowResult, StoredStudent
from identity_service.domain.undo import RecordedChange, SweptArchive
from identity_service.service.ports import UndoClaim

# The claim is the row itself: a concurrent claim of the same job waits on the primary key until
# this transaction ends, then sees the row. An undo job is never undone (its id is an undo_job_id).
_CLAIM = """WITH refused AS (SELECT 1 FROM import_job_undos WHERE undo_job_id = $1),
    inserted AS (
        INSERT INTO import_job_undos (job_id, undo_job_id)
        SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM refused)
        ON CONFLICT (job_id) DO NOTHING RETURNING undo_job_id)
    SELECT (SELECT undo_job_id FROM inserted) AS inserted,
        (SELECT undo_job_id FROM import_job_undos WHERE job_id = $1) AS earlier,
        EXISTS (SELECT 1 FROM refused) AS is_undo"""
_CHANGES = """SELECT row_number, outcome, user_id, changes::text AS changes, user_version
    FROM import_row_outcomes
    WHERE job_id = $1 AND outcome IN ('CREATED', 'UPDATED', 'ARCHIVED') AND user_id IS NOT NULL
    ORDER BY row_number"""
# The students the job's full-roster sweep archived, with their version right after (migration 0045;
# NULL before it: "changed since").
_SWEEP = "SELECT user_id, user_version FROM roster_archives WHERE job_id = $1 ORDER BY user_id"
_STUDENTS = """SELECT id, user_type, school_id, status, username, email, first_name, last_name,
        auth_identifier, file_updates_disabled, last_import_job_time, last_import_job_id,
        last_import_row, username_key, email_key, email_skeleton, email_plain, auth_identifier_key,
        version
    FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"""
_DELETE = "DELETE FROM users WHERE id = ANY($1::uuid[])"
_REPLAY = """SELECT row_number, outcome, approved, user_id, reason, message, changes::text AS changes
    FROM import_row_outcomes WHERE job_id = $1 ORDER BY row_number"""


class PostgresJobUndos:
    """``ports.JobUndos`` on the unit of work's connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def claim(self, job_id: str, undo_job_id: str) -> UndoClaim:
        row = await self._conn.fetchrow(_CLAIM, job_id, undo_job_id)
        assert row is not None
        if row["inserted"] is not None:
            return UndoClaim.CLAIMED
        if row["is_undo"] or row["earlier"] != undo_job_id:
            return UndoClaim.REFUSED
        return UndoClaim.REPEATED

    async def job_changes(self, job_id: str) -> list[RecordedChange]:
        rows = await self._conn.fetch(_CHANGES, job_id)
        return [
            RecordedChange(
                row["row_number"],
                RowOutcome(row["outcome"]),
                str(row["user_id"]),
                changes_from_json(row["changes"]),
                row["user_version"],
            )
            for row in rows
        ]

    async def job_sweep(self, job_id: str) -> list[SweptArchive]:
        rows = await self._conn.fetch(_SWEEP, job_id)
        return [SweptArchive(str(row["user_id"]), row["user_version"]) for row in rows]

    async def students(self, user_ids: Sequence[str]) -> list[tuple[StoredStudent, int]]:
        if not user_ids:
            return []
        rows = await self._conn.fetch(_STUDENTS, list(user_ids))
        return [(stored_student(row), row["version"]) for row in rows]

    async def delete_students(self, user_ids: Sequence[str]) -> None:
        await self._conn.execute(_DELETE, list(user_ids))

    async def replay(self, undo_job_id: str) -> list[RowResult]:
        return [recorded_result(row) for row in await self._conn.fetch(_REPLAY, undo_job_id)]
