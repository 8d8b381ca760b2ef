"""The SQL of the student file (ApplyStudentRows): one statement per step, every row set passed as
arrays to unnest(). A repository of the unit of work (``uow.student_file``), which opens the
transaction and, for a batch, turns the database's refusals into ``BatchConflict`` / ``BatchRefused``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from identity_service.adapters.postgres.user_rows import USER_COLUMNS, to_user
from identity_service.domain.identity_keys import EmailIdentity, auth_identifier_key, username_key
from identity_service.domain.student_file import (
    FieldChange,
    Holder,
    ImportMark,
    RowOutcome,
    RowReason,
    RowResult,
    StoredStudent,
    Student,
    row_of,
)
from identity_service.domain.users import User, UserStatus, UserType
from identity_service.service.ports import BatchConflict, SweptStudent
from shared import json_text

# asyncpg's prepared statements end up on a generic plan, which may read the job's recorded rows by
# job_id alone; the row-number range bounds that read to the batch's span whatever the plan.
_RECORDED = """SELECT row_number, outcome, approved, user_id, reason, message, changes::text AS changes
    FROM import_row_outcomes
    WHERE job_id = $1 AND row_number BETWEEN $2 AND $3 AND row_number = ANY($4::bigint[])"""
# One unique-index probe per key (username keys within the school, email keys anywhere), whatever the
# statistics say: on a young table (never analyzed) the planner believes any one school is 0.5 % of
# the users and would rather scan the whole school than probe, once per batch. A LATERAL subquery with
# LIMIT is never flattened into a join, so each key stays one probe of its unique index.
#
# Lookalikes (identity_keys.EmailIdentity.confusable_with) come along: for a plain (ASCII) row's
# skeleton only non-plain holders can be one (the small partial index users_email_lookalike); for a
# non-plain row's, any holder of another key (at most one of the two found is the row's own E).
_NAMED = """SELECT id, user_type, school_id, status, username, email, first_name, last_name,
        auth_identifier, file_updates_disabled, last_import_job_time, last_import_job_id,
        last_import_row, username_key, email_key, email_skeleton, email_plain, auth_identifier_key
    FROM users
    WHERE id = ANY(ARRAY(
        SELECT n.id FROM unnest($2::text[]) AS k(key), LATERAL (
            SELECT id FROM users
            WHERE school_id = $1 AND username_key IS NOT NULL AND username_key = k.key LIMIT 1) AS n
        UNION ALL
        SELECT e.id FROM unnest($3::text[]) AS k(key), LATERAL (
            SELECT id FROM users WHERE email_key = k.key LIMIT 1) AS e
        UNION ALL
        SELECT l.id FROM unnest($4::text[]) AS k(key), LATERAL (
            SELECT id FROM users WHERE email_skeleton = k.key AND NOT email_plain LIMIT 1) AS l
        UNION ALL
        SELECT l.id FROM unnest($5::text[]) AS k(key), LATERAL (
            SELECT id FROM users WHERE email_skeleton = k.key LIMIT 2) AS l
        UNION ALL
        SELECT a.id FROM unnest($6::text[]) AS k(key), LATERAL (
            SELECT id FROM users
            WHERE school_id = $1 AND auth_identifier_key IS NOT NULL AND auth_identifier_key = k.key
            LIMIT 1) AS a))
    ORDER BY id"""
# user_version (undo, migration 0043): the student's version once this batch is written. Outcomes are
# recorded before the batch's one UPDATE (which bumps a changed student's version by one) and INSERT
# (new students start at 1), so it is the stored version + 1, or 1 for a student not stored yet.
_RECORD = """INSERT INTO import_row_outcomes
        (job_id, row_number, outcome, approved, user_id, reason, message, changes, user_version)
    SELECT $1, v.row_number, v.outcome, v.approved, v.user_id, v.reason, v.message, v.changes::jsonb,
        CASE WHEN v.outcome IN ('CREATED', 'UPDATED', 'ARCHIVED') THEN
            coalesce((SELECT version FROM users WHERE id = v.user_id), 0) + 1 END
    FROM unnest($2::bigint[], $3::text[], $4::bool[], $5::uuid[], $6::text[], $7::text[], $8::text[])
        AS v(row_number, outcome, approved, user_id, reason, message, changes)
    ON CONFLICT DO NOTHING"""
# Moves keys aside for the rest of the transaction (the update below overwrites them): a placeholder
# unique per user, plain ASCII in lower case, so it is its own key and never anybody's lookalike.
_PARK = """UPDATE users SET email = 'parked-' || id::text || '@parked.invalid',
        email_key = 'parked-' || id::text || '@parked.invalid',
        email_skeleton = 'parked-' || id::text || '@parked.invalid', email_plain = true,
        username = CASE WHEN username IS NULL THEN NULL ELSE 'parked-' || id::text END,
        username_key = CASE WHEN username IS NULL THEN NULL ELSE 'parked-' || id::text END
    WHERE id = ANY($1::uuid[])"""
_UPDATE = """UPDATE users u SET username = v.username, email = v.email, first_name = v.first_name,
        last_name = v.last_name, auth_identifier = v.auth_identifier, status = v.status,
        last_import_job_time = $1, last_import_job_id = $2, last_import_row = v.row_number,
        version = u.version + CASE WHEN v.changed THEN 1 ELSE 0 END,
        update_time = CASE WHEN v.changed THEN now() ELSE u.update_time END,
        email_key = v.email_key, email_skeleton = v.email_skeleton, email_plain = v.email_plain,
        username_key = v.username_key,
        auth_identifier_key = CASE WHEN v.auth_identifier = u.auth_identifier THEN u.auth_identifier_key
            ELSE v.auth_identifier_key END
    FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                $10::bigint[], $11::bool[], $12::text[], $13::text[], $14::bool[], $15::text[],
                $16::text[])
        AS v(id, username, email, first_name, last_name, auth_identifier, status, row_number, changed,
             email_key, email_skeleton, email_plain, username_key, auth_identifier_key)
    WHERE u.id = v.id"""
# New students (their audit events go through the audit port, in the same transaction).
_INSERT = """INSERT INTO users (id, user_type, status, school_id, username, email, first_name, last_name,
        auth_identifier, origin, last_import_job_time, last_import_job_id, last_import_row,
        email_key, email_skeleton, email_plain, username_key, auth_identifier_key)
    SELECT v.id, 'STUDENT', v.status, v.school_id, v.username, v.email, v.first_name, v.last_name,
        v.auth_identifier, 'STUDENT_FILE', $1, $2, v.row_number,
        v.email_key, v.email_skeleton, v.email_plain, v.username_key, v.auth_identifier_key
    FROM unnest($3::uuid[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[],
                $10::text[], $11::bigint[], $12::text[], $13::text[], $14::bool[], $15::text[],
                $16::text[])
        AS v(id, status, school_id, username, email, first_name, last_name, auth_identifier, row_number,
             email_key, email_skeleton, email_plain, username_key, auth_identifier_key)"""


# The full-roster sweep (issue 9). The claim is the sweep's lock: a second transaction for the same
# job waits on the primary key until the first ends, then finds the row and claims nothing.
_CLAIM_SWEEP = """INSERT INTO roster_sweeps (job_id, school_id) VALUES ($1, $2)
    ON CONFLICT (job_id) DO NOTHING RETURNING job_id"""
_SWEPT = """SELECT user_id, username, email, archive_time, user_version FROM roster_archives
    WHERE job_id = $1 ORDER BY user_id"""
_CANDIDATES = f"""SELECT {USER_COLUMNS} FROM users u
    WHERE u.school_id = $1 AND u.user_type = 'STUDENT' AND u.status = 'ACTIVE'
        AND NOT u.file_updates_disabled
        AND (u.origin = 'STUDENT_FILE' OR u.last_import_job_id IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM import_row_outcomes o WHERE o.job_id = $2 AND o.user_id = u.id)"""
_NOT_NAMED = _CANDIDATES + " ORDER BY u.id"
# A dry run's sweep: not named by the recorded outcomes nor by the job's dry-run roster preview.
_NOT_NAMED_OR_PREVIEWED = (
    _CANDIDATES
    + """
        AND NOT EXISTS (SELECT 1 FROM roster_previews p WHERE p.job_id = $2 AND p.user_id = u.id)
    ORDER BY u.id"""
)
_RECORD_SWEPT = """INSERT INTO roster_archives (job_id, user_id, username, email, archive_time, user_version)
    SELECT $1, v.user_id, v.username, v.email, v.archive_time, v.user_version
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[])
        AS v(user_id, username, email, archive_time, user_version)
    ON CONFLICT DO NOTHING"""
# A dry-run full-roster batch: which student each row named (the first answer of a row wins, as for
# recorded outcomes: a redelivered batch adds nothing).
_RECORD_PREVIEW = """INSERT INTO roster_previews (job_id, row_number, user_id)
    SELECT $1, v.row_number, v.user_id FROM unnest($2::bigint[], $3::uuid[]) AS v(row_number, user_id)
    ON CONFLICT DO NOTHING"""
_CLEAR_PREVIEW = "DELETE FROM roster_previews WHERE job_id = $1"
_COUNT_STUDENTS = "SELECT count(*) FROM users WHERE school_id = $1 AND user_type = 'STUDENT'"


class PostgresStudentFile:
    """``ports.StudentFile`` on the unit of work's connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def recorded_outcomes(self, job_id: str, row_numbers: Sequence[int]) -> dict[int, RowResult]:
        if not row_numbers:
            return {}
        rows = await self._conn.fetch(_RECORDED, job_id, min(row_numbers), max(row_numbers), row_numbers)
        return {row["row_number"]: _result(row) for row in rows}

    async def students_named(
        self,
        school_id: str,
        username_keys: Sequence[str],
        emails: Sequence[EmailIdentity],
        *,
        lock: bool,
        auth_identifier_keys: Sequence[str] = (),
    ) -> list[StoredStudent]:
        query = _NAMED + " FOR UPDATE" if lock else _NAMED
        rows = await self._conn.fetch(
            query,
            school_id,
            username_keys,
            [e.key for e in emails],
            [e.skeleton for e in emails if e.plain],
            [e.skeleton for e in emails if not e.plain],
            list(auth_identifier_keys),
        )
        return [_stored(row) for row in rows]

    async def record_outcomes(self, job_id: str, results: Sequence[RowResult]) -> None:
        status = await self._conn.execute(
            _RECORD,
            job_id,
            [r.row_number for r in results],
            [r.outcome.value for r in results],
            [r.approved for r in results],
            [r.user_id for r in results],
            [r.reason.value if r.reason else None for r in results],
            [r.message for r in results],
            [changes_to_json(r.changes) for r in results],
        )
        if _count(status) != len(results):
            raise BatchConflict(f"rows of job {job_id} were recorded by another call meanwhile")

    async def park_keys(self, user_ids: Sequence[str]) -> None:
        await self._conn.execute(_PARK, user_ids)

    async def update_students(self, job_id: str, job_time: datetime, students: Sequence[Student]) -> None:
        holders = [s.holder for s in students]
        await self._conn.execute(
            _UPDATE,
            job_time,
            job_id,
            *_columns(holders),
            [h.status.value for h in holders],
            [row_of(s) for s in students],
            [s.changed for s in students],
            *_keys(students),
        )

    async def insert_students(self, job_id: str, job_time: datetime, students: Sequence[Student]) -> None:
        ordered = sorted(students, key=lambda s: s.email_identity.key)  # one lock order for all batches
        holders = [s.holder for s in ordered]
        ids, usernames, emails, first_names, last_names, auth_identifiers = _columns(holders)
        await self._conn.execute(
            _INSERT,
            job_time,
            job_id,
            ids,
            [h.status.value for h in holders],
            [h.school_id for h in holders],
            usernames,
            emails,
            first_names,
            last_names,
            auth_identifiers,
            [row_of(s) for s in ordered],
            *_keys(ordered),
        )

    async def claim_sweep(self, school_id: str, job_id: str) -> bool:
        return await self._conn.fetchval(_CLAIM_SWEEP, job_id, school_id) is not None

    async def swept(self, job_id: str) -> list[SweptStudent]:
        rows = await self._conn.fetch(_SWEPT, job_id)
        return [
            SweptStudent(str(r["user_id"]), r["username"], r["email"], r["archive_time"], r["user_version"])
            for r in rows
        ]

    async def record_roster_preview(self, job_id: str, named: Sequence[tuple[int, str]]) -> None:
        if not named:
            return
        await self._conn.execute(_RECORD_PREVIEW, job_id, [n for n, _ in named], [u for _, u in named])

    async def not_named(
        self, school_id: str, job_id: str, *, lock: bool, previews: bool = False
    ) -> list[User]:
        query = _NOT_NAMED_OR_PREVIEWED if previews else _NOT_NAMED
        rows = await self._conn.fetch(query + (" FOR UPDATE" if lock else ""), school_id, job_id)
        return [to_user(row) for row in rows]

    async def clear_roster_preview(self, job_id: str) -> None:
        await self._conn.execute(_CLEAR_PREVIEW, job_id)

    async def record_swept(self, job_id: str, students: Sequence[SweptStudent]) -> None:
        if not students:
            return
        await self._conn.execute(
            _RECORD_SWEPT,
            job_id,
            [s.user_id for s in students],
            [s.username for s in students],
            [s.email for s in students],
            [s.archive_time for s in students],
            [s.user_version for s in students],
        )

    async def count_students(self, school_id: str) -> int:
        return int(await self._conn.fetchval(_COUNT_STUDENTS, school_id))


def _columns(holders: Sequence[Holder]) -> tuple[list[Any], ...]:
    return (
        [h.id for h in holders],
        [h.username for h in holders],
        [h.email for h in holders],
        [h.first_name for h in holders],
        [h.last_name for h in holders],
        [h.auth_identifier for h in holders],
    )


def _keys(students: Sequence[Student]) -> tuple[list[Any], ...]:
    """email_key, email_skeleton, email_plain, username_key, auth_identifier_key columns
    (identity_keys computes them)."""
    identities = [s.email_identity for s in students]
    return (
        [i.key for i in identities],
        [i.skeleton for i in identities],
        [i.plain for i in identities],
        [None if s.holder.username is None else username_key(s.holder.username) for s in students],
        [auth_identifier_key(s.holder.auth_identifier) for s in students],
    )


def _count(status: str) -> int:
    """The row count of a command tag such as ``INSERT 0 42``."""
    return int(status.rsplit(" ", 1)[-1])


def _stored(row: Any) -> StoredStudent:
    job_time = row["last_import_job_time"]
    mark = None
    if job_time is not None:
        mark = ImportMark(job_time, row["last_import_job_id"], row["last_import_row"])
    holder = Holder(
        str(row["id"]),
        UserType(row["user_type"]),
        None if row["school_id"] is None else str(row["school_id"]),
        UserStatus(row["status"]),
        row["username"],
        row["email"],
        row["first_name"],
        row["last_name"],
        row["auth_identifier"],
        row["file_updates_disabled"],
    )
    identity = EmailIdentity(row["email_key"], row["email_skeleton"], row["email_plain"])
    return StoredStudent(holder, mark, row["username_key"], identity, row["auth_identifier_key"])


def _result(row: Any) -> RowResult:
    return RowResult(
        row["row_number"],
        RowOutcome(row["outcome"]),
        row["approved"],
        None if row["user_id"] is None else str(row["user_id"]),
        None if row["reason"] is None else RowReason(row["reason"]),
        row["message"],
        changes_from_json(row["changes"]),
    )


def changes_to_json(changes: Sequence[FieldChange]) -> str | None:
    """The ``changes`` column: a JSON array of [field, old_value, new_value]; None for no changes."""
    return json_text.compact(changes) if changes else None


def changes_from_json(text: str | None) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(*change) for change in json.loads(text)) if text else ()


stored_student = _stored  # the undo repository reads users the same way
recorded_result = _result
