"""The ``jobs`` table: creation on first sight, end of file, reads and newest-first listing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from import_service.domain.jobs import (
    Counts,
    EndRecorded,
    Hold,
    ImportMode,
    Job,
    JobSpec,
    Phase,
    end_mismatch,
    phase_after_rows,
)

_JOB_COLUMNS = """
    j.job_id, j.parent_job_id, j.school_id, j.mode, j.sensitive_fields_update, j.dry_run,
    j.source_name, j.total_rows, j.end_seen, j.rows_recorded, j.created, j.updated, j.unchanged,
    j.skipped, j.failed, j.approved, j.field_changes::text AS field_changes, j.create_time, j.complete_time,
    j.archived, j.deleted, j.full_roster, j.undo_of_job_id, j.guarded, j.phase, j.hold_sensitive_changes,
    j.hold_archives, j.hold_school_students, j.hold_threshold_percent,
    (SELECT count(*) FROM dead_letters d
     WHERE d.job_id = j.job_id AND d.school_id = j.school_id) AS dead_lettered
"""

_GET = f"SELECT {_JOB_COLUMNS} FROM jobs j WHERE j.job_id = $1"

_ENSURE = """
WITH ins AS (
    INSERT INTO jobs (job_id, parent_job_id, school_id, mode, sensitive_fields_update, dry_run, source_name,
                      full_roster, undo_of_job_id, guarded, phase, after_rows)
    VALUES ($1, NULLIF($2, ''), $3, $4, $5, $6, $7, $8, NULLIF($9, ''), $10, $11, $12)
    ON CONFLICT (job_id) DO NOTHING
    RETURNING *
)
SELECT j.*, 0::bigint AS dead_lettered FROM ins j
UNION ALL
SELECT j.*, 0::bigint AS dead_lettered FROM jobs j WHERE j.job_id = $1
LIMIT 1
"""

# Recorded only when it agrees with the job (domain.jobs.end_mismatch); the WHERE is evaluated again on
# the newest row version after waiting for a concurrent writer's lock, so two ends cannot both win.
# When every row is in, the job moves on to what ``after_rows`` says (domain.jobs.phase_after_rows).
_RECORD_END = """
UPDATE jobs SET
    total_rows = $2,
    end_seen = true,
    phase = CASE WHEN phase = 'RECEIVING' AND rows_recorded >= $2 THEN after_rows ELSE phase END,
    rows_done_time = COALESCE(
        rows_done_time, CASE WHEN phase = 'RECEIVING' AND rows_recorded >= $2 THEN now() END),
    complete_time = COALESCE(
        complete_time,
        CASE WHEN phase = 'RECEIVING' AND after_rows = 'COMPLETED' AND rows_recorded >= $2 THEN now() END)
WHERE job_id = $1 AND (NOT end_seen OR total_rows = $2) AND rows_recorded <= $2
RETURNING rows_done_time IS NOT DISTINCT FROM now(), phase
"""
_PROGRESS = "SELECT total_rows, end_seen, rows_recorded FROM jobs WHERE job_id = $1"


def job_from_record(rec: Any) -> Job:
    spec = JobSpec(
        job_id=rec["job_id"],
        school_id=rec["school_id"],
        mode=ImportMode(rec["mode"]),
        sensitive_fields_update=rec["sensitive_fields_update"],
        dry_run=rec["dry_run"],
        source_name=rec["source_name"],
        parent_job_id=rec["parent_job_id"] or "",
        full_roster=rec["full_roster"],
        undo_of_job_id=rec["undo_of_job_id"] or "",
    )
    counts = Counts(
        created=rec["created"],
        updated=rec["updated"],
        unchanged=rec["unchanged"],
        skipped=rec["skipped"],
        failed=rec["failed"],
        approved=rec["approved"],
        archived=rec["archived"],
        deleted=rec["deleted"],
        field_changes=json.loads(rec["field_changes"]) if rec["field_changes"] else {},
    )
    hold = None
    if rec["hold_threshold_percent"] is not None:
        hold = Hold(
            sensitive_changes=rec["hold_sensitive_changes"],
            archives=rec["hold_archives"],
            school_students=rec["hold_school_students"],
            threshold_percent=rec["hold_threshold_percent"],
        )
    phase = Phase(rec["phase"])
    if phase is Phase.RECEIVING and rec["complete_time"] is not None:
        phase = Phase.COMPLETED  # completed by the version before migration 0006 (during a rollout)
    return Job(
        spec=spec,
        create_time=rec["create_time"],
        total_rows=rec["total_rows"],
        end_seen=rec["end_seen"],
        rows_recorded=rec["rows_recorded"],
        counts=counts,
        dead_lettered=rec["dead_lettered"],
        complete_time=rec["complete_time"],
        phase=phase,
        guarded=rec["guarded"],
        hold=hold,
    )


class JobsRepository:
    """``db`` is an asyncpg pool or a connection inside a unit of work."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def ensure(self, spec: JobSpec, *, guarded: bool = False) -> Job:
        """The stored job of ``spec.job_id``, created from ``spec`` when it is new (``guarded``: its
        rows are previewed and the job decided against the school's threshold; an undo job starts
        UNDOING)."""
        first = Phase.UNDOING if spec.undo_of_job_id else Phase.RECEIVING
        args = (
            spec.job_id,
            spec.parent_job_id,
            spec.school_id,
            spec.mode.value,
            spec.sensitive_fields_update,
            spec.dry_run,
            spec.source_name,
            spec.full_roster,
            spec.undo_of_job_id,
            guarded,
            first.value,
            phase_after_rows(spec, guarded).value,
        )
        for _ in range(5):  # a concurrent insert is invisible to this statement's snapshot: ask again
            rec = await self._db.fetchrow(_ENSURE, *args)
            if rec is not None:
                return job_from_record(rec)
        raise RuntimeError(f"job {spec.job_id} could neither be created nor read")

    async def get(self, job_id: str) -> Job | None:
        rec = await self._db.fetchrow(_GET, job_id)
        return None if rec is None else job_from_record(rec)

    async def record_end(self, job_id: str, total_rows: int) -> EndRecorded:
        """Marks the end of file unless it contradicts the job (then says why)."""
        rec = await self._db.fetchrow(_RECORD_END, job_id, total_rows)
        if rec is not None:
            return EndRecorded(completed=bool(rec[0]), phase=Phase(rec[1]))
        now = await self._db.fetchrow(_PROGRESS, job_id)
        if now is None:
            raise LookupError(f"job {job_id} does not exist")
        why = end_mismatch(now["end_seen"], now["total_rows"], now["rows_recorded"], total_rows)
        return EndRecorded(mismatch=why or "the end contradicts the job (it changed meanwhile)")

    async def progress(self, job_id: str) -> tuple[int | None, int]:
        """(total_rows once the end was recorded, else None; distinct rows with an outcome)."""
        rec = await self._db.fetchrow(_PROGRESS, job_id)
        if rec is None:
            return None, 0
        return (rec["total_rows"] if rec["end_seen"] else None), int(rec["rows_recorded"])

    async def list_newest(
        self, school_id: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Job]:
        """Jobs newest first (of one school, or all when ``school_id`` is None), after a cursor."""
        conditions: list[str] = []
        args: list[Any] = []
        if school_id is not None:
            args.append(school_id)
            conditions.append(f"j.school_id = ${len(args)}")
        if after is not None:
            args.extend(after)
            conditions.append(f"(j.create_time, j.job_id) < (${len(args) - 1}, ${len(args)})")
        where = " AND ".join(conditions) or "true"
        args.append(limit)
        sql = f"""SELECT {_JOB_COLUMNS} FROM jobs j WHERE {where}
                  ORDER BY j.create_time DESC, j.job_id DESC LIMIT ${len(args)}"""
        recs = await self._db.fetch(sql, *args)
        return [job_from_record(rec) for rec in recs]
