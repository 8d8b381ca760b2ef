"""The ``row_results`` table: one recorded outcome per row, written a batch at a time.

``record`` stores a batch's outcomes and moves the job's counters in ONE statement: rows that
already have an outcome are left alone (ON CONFLICT DO NOTHING, first outcome wins), only the rows
actually inserted are counted, and when the job's end has been seen and every announced row is
recorded the same statement moves the job on to its ``after_rows`` phase (COMPLETED, or the job
runner's DECIDING / SWEEPING). A guarded job's rows are recorded as its preview (``applied`` false):
the job runner replaces them with what identity applied. The rows' field changes (``changes``, a JSON
array of [field, old, new]) are counted per field into the job's ``field_changes`` by that statement
too (``domain.jobs.count_field_changes`` is the reference).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from import_service.adapters.postgres.storable import storable
from import_service.adapters.postgres.stored_rows import stored_row
from import_service.adapters.wire import row_to_bytes
from import_service.domain.jobs import FieldChange, Outcome, RecordedRow, RowResult
from import_service.domain.rows import STATUS_COLUMN, FileRow
from shared import json_text

_RECORD = """
WITH ins AS (
    INSERT INTO row_results
        (job_id, row_number, outcome, approved, user_id, reason, message, row_pb, changes, applied)
    SELECT $1, t.row_number, t.outcome, t.approved, NULLIF(t.user_id, ''), NULLIF(t.reason, ''),
           NULLIF(t.message, ''), t.row_pb, t.changes::jsonb, $10
    FROM unnest($2::bigint[], $3::text[], $4::bool[], $5::text[], $6::text[], $7::text[], $8::bytea[],
                $9::text[])
         AS t(row_number, outcome, approved, user_id, reason, message, row_pb, changes)
    ON CONFLICT (job_id, row_number) DO NOTHING
    RETURNING outcome, approved, changes
), per_field AS (
    SELECT c.change->>0 AS field, count(*) AS n
    FROM ins, jsonb_array_elements(ins.changes) AS c(change)
    GROUP BY 1
), tally AS (
    SELECT count(*) AS n,
           count(*) FILTER (WHERE outcome = 'CREATED') AS created,
           count(*) FILTER (WHERE outcome = 'UPDATED') AS updated,
           count(*) FILTER (WHERE outcome = 'UNCHANGED') AS unchanged,
           count(*) FILTER (WHERE outcome = 'SKIPPED') AS skipped,
           count(*) FILTER (WHERE outcome = 'FAILED') AS failed,
           count(*) FILTER (WHERE approved) AS approved,
           count(*) FILTER (WHERE outcome = 'ARCHIVED') AS archived,
           count(*) FILTER (WHERE outcome = 'DELETED') AS deleted
    FROM ins
)
UPDATE jobs j SET
    rows_recorded = j.rows_recorded + t.n,
    created = j.created + t.created,
    updated = j.updated + t.updated,
    unchanged = j.unchanged + t.unchanged,
    skipped = j.skipped + t.skipped,
    failed = j.failed + t.failed,
    approved = j.approved + t.approved,
    archived = j.archived + t.archived,
    deleted = j.deleted + t.deleted,
    field_changes = j.field_changes || COALESCE(
        (SELECT jsonb_object_agg(f.field, COALESCE((j.field_changes->>f.field)::bigint, 0) + f.n)
         FROM per_field f),
        '{}'::jsonb),
    phase = CASE WHEN j.phase = 'RECEIVING' AND j.end_seen AND j.rows_recorded + t.n >= j.total_rows
                 THEN j.after_rows ELSE j.phase END,
    rows_done_time = COALESCE(
        j.rows_done_time,
        CASE WHEN j.phase = 'RECEIVING' AND j.end_seen AND j.rows_recorded + t.n >= j.total_rows
             THEN now() END),
    complete_time = COALESCE(
        j.complete_time,
        CASE WHEN j.phase = 'RECEIVING' AND j.after_rows = 'COMPLETED' AND j.end_seen
                  AND j.rows_recorded + t.n >= j.total_rows THEN now() END)
FROM tally t
WHERE j.job_id = $1
RETURNING t.n AS inserted, j.rows_done_time IS NOT DISTINCT FROM now() AS just_completed
"""

# The range bounds the read to the batch's span of the primary key: without it a young table (never
# analyzed, so a job looks like 0.5 % of the rows) is read by job_id alone, the whole job per batch.
_RECORDED_AMONG = """SELECT row_number FROM row_results
    WHERE job_id = $1 AND row_number BETWEEN $2 AND $3 AND row_number = ANY($4::bigint[])"""
_PAGE = """
SELECT row_number, outcome, approved, user_id, reason, message, row, row_pb, changes::text AS changes
FROM row_results WHERE job_id = $1 AND row_number > $2 ORDER BY row_number LIMIT $3
"""
_PAGE_OF_OUTCOMES = """
SELECT row_number, outcome, approved, user_id, reason, message, row, row_pb, changes::text AS changes
FROM row_results WHERE job_id = $1 AND row_number > $2 AND outcome = ANY($4::text[])
ORDER BY row_number LIMIT $3
"""


def recorded_row(rec: Any) -> RecordedRow:
    """A stored outcome and its row, from a ``row_results`` record (the page queries' columns)."""
    result = RowResult(
        row_number=rec["row_number"],
        outcome=Outcome(rec["outcome"]),
        approved=rec["approved"],
        user_id=rec["user_id"] or "",
        reason=rec["reason"] or "",
        message=rec["message"] or "",
        changes=changes_from_json(rec["changes"]),
    )
    return RecordedRow(result, stored_row(rec["row_number"], rec["row_pb"], rec["row"]))


def result_columns(results: Sequence[RowResult]) -> tuple[list[Any], ...]:
    """Results as the recording statements' arrays: row number, outcome, approved, user id, reason,
    message (text made storable) and changes (JSON)."""
    return (
        [r.row_number for r in results],
        [r.outcome.value for r in results],
        [r.approved for r in results],
        [storable(r.user_id) for r in results],
        [storable(r.reason) for r in results],
        [storable(r.message) for r in results],
        [changes_to_json(r.changes) for r in results],
    )


def changes_to_json(changes: tuple[FieldChange, ...]) -> str | None:
    """The ``changes`` column's text: [[field, old, new], ...]; None for a row that changed nothing.
    Text jsonb refuses (NUL, lone surrogates) is made storable: a record never fails on it."""
    if not changes:
        return None
    text = json_text.compact(changes)
    try:
        text.encode("utf-8")
        if "\\u0000" not in text:
            return text
    except UnicodeEncodeError:
        pass
    cleaned = [[storable(value) for value in change] for change in changes]
    return json_text.compact(cleaned)


def changes_from_json(text: str | None) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(*change) for change in json.loads(text)) if text else ()


class RowResultsRepository:
    """``db`` is an asyncpg pool or a connection inside a unit of work."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def recorded_among(self, job_id: str, row_numbers: Sequence[int]) -> set[int]:
        """Which of ``row_numbers`` already have an outcome (one query)."""
        if not row_numbers:
            return set()
        recs = await self._db.fetch(
            _RECORDED_AMONG, job_id, min(row_numbers), max(row_numbers), list(row_numbers)
        )
        return {rec["row_number"] for rec in recs}

    async def record(
        self, job_id: str, outcomes: Sequence[tuple[FileRow, RowResult]], *, applied: bool = True
    ) -> tuple[int, bool]:
        """Stores outcomes not yet recorded (``applied`` false: a guarded job's preview); returns (rows
        inserted, whether this recorded the job's last row)."""
        number, outcome, approved, user_id, reason, message, changes = result_columns(
            [result for _, result in outcomes]
        )
        rows = [row_to_bytes(row) for row, _ in outcomes]
        columns = (number, outcome, approved, user_id, reason, message, rows, changes)
        rec = await self._db.fetchrow(_RECORD, job_id, *columns, applied)
        if rec is None:
            raise LookupError(f"job {job_id} does not exist")
        return int(rec["inserted"]), bool(rec["just_completed"])

    async def page(
        self, job_id: str, outcomes: Collection[Outcome], after_row: int, limit: int
    ) -> list[RecordedRow]:
        """Recorded rows by row number after ``after_row``, of the given outcomes (all when empty)."""
        if outcomes:
            recs = await self._db.fetch(
                _PAGE_OF_OUTCOMES,
                job_id,
                after_row,
                limit,
                [o.value for o in outcomes],
            )
        else:
            recs = await self._db.fetch(
                _PAGE,
                job_id,
                after_row,
                limit,
            )
        return [recorded_row(rec) for rec in recs]

    async def failed_extra_columns(self, job_id: str) -> list[str]:
        """The columns the failed rows need beyond the named ones: ``status`` when any row has one
        (an explicit archive row), then their extra column names in order of first appearance."""
        recs = await self._db.fetch(
            """SELECT row_pb, row FROM row_results
               WHERE job_id = $1 AND outcome = 'FAILED' ORDER BY row_number""",
            job_id,
        )
        names: dict[str, None] = {}
        status = False
        for rec in recs:
            row = stored_row(1, rec["row_pb"], rec["row"])
            status = status or bool(row.status)
            names.update(dict.fromkeys(name for name, _ in row.extra))
        return [STATUS_COLUMN, *names] if status else list(names)
