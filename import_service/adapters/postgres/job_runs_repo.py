"""What the job runner and the staff decisions on a job store (migration 0006): leases on jobs in a
runner phase, a guarded job's preview figures and decision, applying its rows over the preview,
a full roster's archives, an undo's results, and release / discard.

Every phase change is guarded by the phase it leaves (``WHERE phase = ...``): a second runner whose
lease ran out, or a staff decision racing the runner, changes nothing twice. Rows applied over the
preview are guarded by ``NOT applied`` the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from import_service.adapters.postgres.jobs_repo import _JOB_COLUMNS, job_from_record
from import_service.adapters.postgres.results_repo import recorded_row, result_columns
from import_service.adapters.postgres.storable import storable
from import_service.domain.jobs import (
    RUNNER_PHASES,
    SENSITIVE_FIELDS,
    Archive,
    Hold,
    Job,
    JobSpec,
    Phase,
    RecordedRow,
    RowResult,
)

_RUNNABLE = [phase.value for phase in RUNNER_PHASES]

_CLAIM = """
UPDATE jobs SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
WHERE job_id = (
    SELECT job_id FROM jobs
    WHERE phase = ANY($3::text[]) AND (lease_until IS NULL OR lease_until < now())
          AND NOT (job_id = ANY($4::text[]))
    ORDER BY create_time
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING job_id
"""
_RENEW = """UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
            WHERE job_id = $1 AND lease_owner = $2 RETURNING job_id"""
_LET_GO = "UPDATE jobs SET lease_until = NULL WHERE job_id = $1 AND lease_owner = $2"

# The students whose sensitive field an UPDATED preview row changes (a value they had: filling a blank
# one is no change of identity, as identity's decision table says), and the explicit archive rows.
_FIGURES = """
SELECT
    count(DISTINCT user_id) FILTER (
        WHERE outcome = 'UPDATED' AND EXISTS (
            SELECT 1 FROM jsonb_array_elements(changes) AS c(change)
            WHERE c.change->>0 = ANY($2::text[]) AND c.change->>1 <> ''))
        AS sensitive_changes,
    count(DISTINCT user_id) FILTER (WHERE outcome = 'ARCHIVED') AS archives
FROM row_results WHERE job_id = $1
"""
_DECIDE = """
UPDATE jobs SET phase = $2, hold_sensitive_changes = $3, hold_archives = $4, hold_school_students = $5,
                hold_threshold_percent = $6
WHERE job_id = $1 AND phase = 'DECIDING'
RETURNING job_id
"""
_RELEASE = """UPDATE jobs SET phase = 'APPLYING', decided_by = NULLIF($2, ''), lease_until = NULL
              WHERE job_id = $1 AND phase = 'HELD' RETURNING job_id"""
_DISCARD = """UPDATE jobs SET phase = 'DISCARDED', decided_by = NULLIF($2, ''), complete_time = now()
              WHERE job_id = $1 AND phase = 'HELD' RETURNING job_id"""

_UNAPPLIED = """
SELECT row_number, outcome, approved, user_id, reason, message, row, row_pb, changes::text AS changes
FROM row_results WHERE job_id = $1 AND NOT applied AND row_number > $3 ORDER BY row_number LIMIT $2
"""
_APPLY = """
UPDATE row_results r SET
    outcome = t.outcome, approved = t.approved, user_id = NULLIF(t.user_id, ''),
    reason = NULLIF(t.reason, ''), message = NULLIF(t.message, ''), changes = t.changes::jsonb, applied = true
FROM unnest($2::bigint[], $3::text[], $4::bool[], $5::text[], $6::text[], $7::text[], $8::text[])
     AS t(row_number, outcome, approved, user_id, reason, message, changes)
WHERE r.job_id = $1 AND r.row_number = t.row_number AND NOT r.applied
"""
# Once every row is applied the counters are counted again from the rows (they counted the preview).
_FINISH_APPLYING = """
WITH tally AS (
    SELECT count(*) FILTER (WHERE outcome = 'CREATED') AS created,
           count(*) FILTER (WHERE outcome = 'UPDATED') AS updated,
           count(*) FILTER (WHERE outcome = 'UNCHANGED') AS unchanged,
           count(*) FILTER (WHERE outcome = 'SKIPPED') AS skipped,
           count(*) FILTER (WHERE outcome = 'FAILED') AS failed,
           count(*) FILTER (WHERE approved) AS approved,
           count(*) FILTER (WHERE outcome = 'ARCHIVED') AS archived,
           count(*) FILTER (WHERE NOT applied) AS unapplied
    FROM row_results WHERE job_id = $1
), per_field AS (
    SELECT COALESCE(jsonb_object_agg(f.field, f.n), '{}'::jsonb) AS counted
    FROM (SELECT c.change->>0 AS field, count(*) AS n
          FROM row_results r, jsonb_array_elements(r.changes) AS c(change)
          WHERE r.job_id = $1 GROUP BY 1) f
)
UPDATE jobs j SET
    created = t.created, updated = t.updated, unchanged = t.unchanged, skipped = t.skipped,
    failed = t.failed, approved = t.approved, archived = t.archived, field_changes = p.counted,
    phase = CASE WHEN j.full_roster THEN 'SWEEPING' ELSE 'COMPLETED' END,
    complete_time = CASE WHEN j.full_roster THEN NULL ELSE now() END
FROM tally t, per_field p
WHERE j.job_id = $1 AND j.phase = 'APPLYING' AND t.unapplied = 0
RETURNING j.phase
"""
_ARCHIVES_PAGE = """
SELECT user_id, username, email_address, archive_time FROM job_archives
WHERE job_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3
"""
_FORGET_ARCHIVES = "DELETE FROM job_archives WHERE job_id = $1"
_KEEP_ARCHIVES = """
INSERT INTO job_archives (job_id, user_id, username, email_address, archive_time)
SELECT $1, t.user_id, t.username, t.email_address, t.archive_time
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[])
     AS t(user_id, username, email_address, archive_time)
ON CONFLICT (job_id, user_id) DO NOTHING
"""
_FINISH_SWEEP = """
UPDATE jobs SET phase = 'COMPLETED', complete_time = now(),
    archived = (SELECT count(*) FROM row_results WHERE job_id = $1 AND outcome = 'ARCHIVED') + $2
WHERE job_id = $1 AND phase = 'SWEEPING'
RETURNING job_id
"""
_FINISH_UNDO = """
UPDATE jobs SET phase = 'COMPLETED', complete_time = now(), total_rows = $2, end_seen = true,
                rows_done_time = now()
WHERE job_id = $1 AND phase = 'UNDOING'
RETURNING job_id
"""
_DECISION = "SELECT action, job_id, result_job FROM job_decisions WHERE request_id = $1"
_ADD_DECISION = """INSERT INTO job_decisions (request_id, action, job_id, result_job) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (request_id) DO NOTHING RETURNING request_id"""
_UNDO_OF = f"SELECT {_JOB_COLUMNS} FROM jobs j WHERE j.undo_of_job_id = $1"
# jobs_one_undo (a unique index on undo_of_job_id) lets one undo of a job in, whoever races it.
_START_UNDO = """
INSERT INTO jobs (job_id, school_id, mode, sensitive_fields_update, dry_run, source_name, undo_of_job_id,
                  phase, after_rows)
VALUES ($1, $2, $3, $4, false, $5, $6, 'UNDOING', 'COMPLETED')
ON CONFLICT DO NOTHING
RETURNING job_id
"""


def _archive(rec: Any) -> Archive:
    return Archive(rec["user_id"], rec["username"], rec["email_address"], rec["archive_time"])


class JobRunsRepository:
    """``db`` is an asyncpg pool or a connection inside a unit of work."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def claim(self, owner: str, lease_seconds: float, busy: Sequence[str]) -> str | None:
        """Leases the oldest job in a runner phase whose lease is free (not one of ``busy``)."""
        rec = await self._db.fetchrow(_CLAIM, owner, lease_seconds, _RUNNABLE, list(busy))
        return None if rec is None else str(rec["job_id"])

    async def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        """Extends ``owner``'s lease; False when another runner took the job over."""
        return await self._db.fetchrow(_RENEW, job_id, owner, lease_seconds) is not None

    async def let_go(self, job_id: str, owner: str) -> None:
        await self._db.execute(_LET_GO, job_id, owner)

    async def preview_figures(self, job_id: str) -> tuple[int, int]:
        """(students an UPDATED preview row changes in a sensitive field, explicit archive rows)."""
        rec = await self._db.fetchrow(_FIGURES, job_id, sorted(SENSITIVE_FIELDS))
        return int(rec["sensitive_changes"]), int(rec["archives"])

    async def decide(self, job_id: str, hold: Hold, would_archive: Sequence[Archive]) -> bool:
        """DECIDING → HELD (``hold.exceeded``; the students the sweep would archive kept for the
        preview) or APPLYING; the figures are kept either way. False when not DECIDING any more."""
        phase = Phase.HELD if hold.exceeded else Phase.APPLYING
        figures = (hold.sensitive_changes, hold.archives, hold.school_students, hold.threshold_percent)
        rec = await self._db.fetchrow(_DECIDE, job_id, phase.value, *figures)
        if rec is None:
            return False
        if phase is Phase.HELD:
            await self._keep_archives(job_id, would_archive)
        return True

    async def release(self, job_id: str, actor: str) -> bool:
        return await self._db.fetchrow(_RELEASE, job_id, actor) is not None

    async def discard(self, job_id: str, actor: str) -> bool:
        if await self._db.fetchrow(_DISCARD, job_id, actor) is None:
            return False
        await self._db.execute(_FORGET_ARCHIVES, job_id)
        return True

    async def unapplied(self, job_id: str, limit: int, after_row: int = 0) -> list[RecordedRow]:
        """The first ``limit`` preview rows not applied yet after ``after_row``, by row number."""
        recs = await self._db.fetch(_UNAPPLIED, job_id, limit, after_row)
        return [recorded_row(rec) for rec in recs]

    async def apply_results(self, job_id: str, results: Sequence[RowResult]) -> None:
        """Replaces preview rows with what identity applied (rows applied already are left alone)."""
        await self._db.execute(_APPLY, job_id, *result_columns(results))

    async def finish_applying(self, job_id: str) -> Phase | None:
        """APPLYING → COMPLETED (or SWEEPING for a full roster) once no preview row is left, counting
        the rows again; None when rows are left or the job is not APPLYING."""
        rec = await self._db.fetchrow(_FINISH_APPLYING, job_id)
        return None if rec is None else Phase(rec["phase"])

    async def finish_sweep(self, job_id: str, archives: Sequence[Archive]) -> bool:
        """SWEEPING → COMPLETED with the students the sweep archived (a dry run's: would archive)."""
        if await self._db.fetchrow(_FINISH_SWEEP, job_id, len(archives)) is None:
            return False
        await self._db.execute(_FORGET_ARCHIVES, job_id)
        await self._keep_archives(job_id, archives)
        return True

    async def finish_undo(self, job_id: str, total_rows: int) -> bool:
        """UNDOING → COMPLETED once its ``total_rows`` results are recorded (same unit of work)."""
        return await self._db.fetchrow(_FINISH_UNDO, job_id, total_rows) is not None

    async def archives_page(self, job_id: str, after_user: str, limit: int) -> list[Archive]:
        return [_archive(rec) for rec in await self._db.fetch(_ARCHIVES_PAGE, job_id, after_user, limit)]

    async def start_undo(self, spec: JobSpec) -> bool:
        """Creates the undo job ``spec`` (UNDOING); False when its job has an undo already."""
        args = (spec.job_id, spec.school_id, spec.mode.value, spec.sensitive_fields_update, spec.source_name)
        return await self._db.fetchrow(_START_UNDO, *args, spec.undo_of_job_id) is not None

    async def undo_of(self, job_id: str) -> Job | None:
        """The undo job of ``job_id``, if it was undone."""
        rec = await self._db.fetchrow(_UNDO_OF, job_id)
        return None if rec is None else job_from_record(rec)

    async def decision(self, request_id: str) -> tuple[str, str, str] | None:
        """(action, job_id, resulting job) a request_id named, if any."""
        rec = await self._db.fetchrow(_DECISION, request_id)
        return None if rec is None else (rec["action"], rec["job_id"], rec["result_job"])

    async def add_decision(self, request_id: str, action: str, job_id: str, result_job: str) -> bool:
        """Claims ``request_id`` for one decision; False when it names one already."""
        return await self._db.fetchrow(_ADD_DECISION, request_id, action, job_id, result_job) is not None

    async def _keep_archives(self, job_id: str, archives: Sequence[Archive]) -> None:
        if not archives:
            return
        await self._db.execute(
            _KEEP_ARCHIVES,
            job_id,
            [a.user_id for a in archives],
            [storable(a.username) for a in archives],
            [storable(a.email_address) for a in archives],
            [a.archive_time for a in archives],
        )
