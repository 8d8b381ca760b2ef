"""ApplyStudentRows: a batch of up to 1000 student-file rows in a few round trips, not one per row.

1. every row is checked with the pure ``validate_row`` (FAILED INVALID_ROW otherwise);
2. in one transaction: the school must exist; rows of the job already applied return their recorded
   outcome and are not applied again (a redelivered message, a retried call); every user any other
   row names is loaded in one query (locked, in id order, unless dry run);
3. the rows go through ``RowBatch`` (the decision table plus the ordering guard) in ascending row
   number;
4. the outcomes, the students and the audit events are written set-wise, one statement each.

A concurrent writer that takes a username or email between the read and the write (or a deadlock)
rolls the batch back and it is applied again from the start: the re-read sees the new holder, so the
decision changes (EMAIL_TAKEN ...). After ``MAX_ATTEMPTS`` the call fails UNAVAILABLE and the import
service retries later. A dry run reads and decides the same way and writes nothing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from identity_service.domain.import_rules import (
    ImportContext,
    ImportMode,
    IncomingRow,
    RowDecision,
    ValidRow,
    validate_row,
)
from identity_service.service.row_batch import BatchWrites, RowBatch, RowResult
from identity_service.service.student_rows_ports import (
    BatchConflict,
    StudentRowsStore,
    StudentRowsStoreFactory,
)
from shared.errors import Reason, RollcallError, invalid

MAX_ATTEMPTS = 5
RETRY_PAUSE_SECONDS = 0.02


@dataclass(frozen=True)
class RowBatchRequest:
    """One ApplyStudentRows call: rows of one job of one school (row numbers unique, 1 or more)."""

    school_id: str
    job_id: str
    job_time: datetime
    mode: ImportMode
    sensitive_fields_update: bool
    dry_run: bool
    rows: Sequence[IncomingRow]

    @property
    def context(self) -> ImportContext:
        return ImportContext(self.school_id, self.mode, self.sensitive_fields_update)


async def apply_student_rows(
    store_factory: StudentRowsStoreFactory, request: RowBatchRequest, caller_client: str
) -> list[RowResult]:
    """One result per row of ``request``, in its order."""
    if len({row.row_number for row in request.rows}) != len(request.rows):
        raise invalid("rows", "row numbers must be distinct within one call")
    checked = [validate_row(row) for row in request.rows]
    for attempt in range(MAX_ATTEMPTS):
        try:
            async with store_factory() as store:
                return await _apply(store, request, checked, caller_client)
        except BatchConflict:
            if attempt + 1 < MAX_ATTEMPTS:
                await asyncio.sleep(RETRY_PAUSE_SECONDS * (attempt + 1) * (1 + random.random()))
    raise RollcallError(
        Reason.UNAVAILABLE,
        f"rows of job {request.job_id} kept meeting concurrent changes ({MAX_ATTEMPTS} tries); retry later",
    )


async def _apply(
    store: StudentRowsStore,
    request: RowBatchRequest,
    checked: Sequence[ValidRow | RowDecision],
    client: str,
) -> list[RowResult]:
    if not await store.school_exists(request.school_id):
        raise RollcallError(Reason.SCHOOL_NOT_FOUND, f"school {request.school_id} not found")
    recorded = await store.recorded_outcomes(request.job_id, [row.row_number for row in checked])
    fresh = [row for row in checked if row.row_number not in recorded]
    valid = sorted((row for row in fresh if isinstance(row, ValidRow)), key=_row_number)
    batch = await _load(store, request, valid)
    decided = {row.row_number: RowResult.of(row) for row in fresh if isinstance(row, RowDecision)}
    decided.update((row.row_number, batch.apply(row)) for row in valid)
    results = [recorded.get(row.row_number) or decided[row.row_number] for row in checked]
    if not request.dry_run and fresh:
        await store.record_outcomes(request.job_id, [r for r in results if r.row_number not in recorded])
        await _write(store, request, batch.writes(), client)
    return results


async def _load(store: StudentRowsStore, request: RowBatchRequest, valid: Sequence[ValidRow]) -> RowBatch:
    stored = (
        await store.students_named(
            request.school_id,
            list({row.username_key for row in valid}),
            list({row.email_key: row.email_identity for row in valid}.values()),
            lock=not request.dry_run,
        )
        if valid
        else []
    )
    return RowBatch(request.context, request.job_id, request.job_time, stored)


async def _write(store: StudentRowsStore, request: RowBatchRequest, writes: BatchWrites, client: str) -> None:
    """Updates before inserts (a new student may take an address an update gave up)."""
    if writes.park:
        await store.park_keys(writes.park)
    if writes.updates:
        await store.update_students(request.job_id, request.job_time, writes.updates)
    if writes.creates:
        await store.insert_students(request.job_id, request.job_time, writes.creates, client=client)
    if writes.audit:
        await store.append_audit(request.school_id, client, writes.audit)


def _row_number(row: ValidRow) -> int:
    return row.row_number
