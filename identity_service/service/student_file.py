"""The student file's use case (ApplyStudentRows): a batch of up to 1000 rows in a few round trips.

1. every row is checked with the pure ``validate_row`` (FAILED INVALID_ROW otherwise);
2. in one unit of work (``batch=True``): the school must exist; rows of the job already applied
   return their recorded outcome and are not applied again (a redelivered message, a retried call);
   every user any other row names is loaded in one query (locked, in id order, unless dry run);
3. the rows go through ``RowBatch`` (``domain/student_file.py``: the decision table plus the ordering
   guard) in ascending row number;
4. the outcomes and the students are written set-wise through ``uow.student_file``, the audit
   events of every created and updated student through ``uow.audit.append_many``, one statement each;
   a batch that approved pending students queues their "approved" mails in one more statement
   (``notifications.students_approved_by_file``; none for other batches and dry runs).

A concurrent writer that takes a username or email between the read and the write (or a deadlock)
rolls the batch back and it is applied again from the start: the re-read sees the new holder, so the
decision changes (EMAIL_TAKEN ...). A dry run reads and decides the same way and writes nothing —
except a dry run of a full-roster job (``full_roster``), which remembers, in the same unit of work
and one statement, which student each row named (``record_roster_preview``: the rows whose result has
a user id), so ArchiveStudentsNotInJob's dry run can tell who the real sweep would archive. Without
``full_roster`` (and in every real run) that statement is not sent.

No poison rows (product.md Additions): what a row contains never makes the call fail. A batch that
still conflicts after ``MAX_ATTEMPTS``, or that the database refuses for anything but an outage, is
split in two (lower row numbers first) and each half applied on its own, down to single rows; a
single row that still fails is FAILED with IDENTITY_CONFLICT, recorded like any outcome. Only an
unreachable database makes the call fail (UNAVAILABLE), so the import service waits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from identity_service.domain.student_file import (
    BatchWrites,
    ImportContext,
    ImportMode,
    IncomingRow,
    RowBatch,
    RowDecision,
    RowOutcome,
    RowReason,
    RowResult,
    ValidRow,
    validate_row,
)
from identity_service.domain.users import UserStatus
from identity_service.service import notifications
from identity_service.service.models import NewAuditEvent, School
from identity_service.service.ports import BatchConflict, BatchRefused, UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, RollcallError, invalid

MAX_ATTEMPTS = 5
RETRY_PAUSE_SECONDS = 0.02
ROW_NUMBER_MAX = 2**63 - 1  # what the outcome records hold (bigint)
CONFLICT_MESSAGE = "the row kept conflicting with concurrent changes of the same students; send it again"
REFUSED_MESSAGE = "identity could not store this row's changes (database refused them, SQLSTATE {})"


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
    full_roster: bool = False  # the job is the school's whole list (a dry run remembers whom it named)

    @property
    def context(self) -> ImportContext:
        return ImportContext(self.school_id, self.mode, self.sensitive_fields_update)


async def apply_student_rows(
    new_uow: UnitOfWorkFactory, request: RowBatchRequest, caller_client: str
) -> list[RowResult]:
    """One result per row of ``request``, in its order."""
    if len({row.row_number for row in request.rows}) != len(request.rows):
        raise invalid("rows", "row numbers must be distinct within one call")
    for index, row in enumerate(request.rows):
        if row.row_number > ROW_NUMBER_MAX:
            raise invalid(f"rows[{index}].row_number", f"must be at most {ROW_NUMBER_MAX}")
    checked = [validate_row(row) for row in request.rows]
    return await _apply_isolating(new_uow, request, checked, caller_client)


async def _apply_isolating(
    new_uow: UnitOfWorkFactory,
    request: RowBatchRequest,
    checked: Sequence[ValidRow | RowDecision],
    client: str,
) -> list[RowResult]:
    """``checked``'s results; a batch that cannot be written is split until its bad rows are alone."""
    try:
        return await _apply_retrying(new_uow, request, checked, client)
    except (BatchConflict, BatchRefused) as error:
        if len(checked) == 1:
            return [await _fail_alone(new_uow, request, checked[0], error)]
        by_number = sorted(checked, key=lambda row: row.row_number)
        half = len(by_number) // 2
        results = await _apply_isolating(new_uow, request, by_number[:half], client)
        results += await _apply_isolating(new_uow, request, by_number[half:], client)
        found = {result.row_number: result for result in results}
        return [found[row.row_number] for row in checked]


async def _apply_retrying(
    new_uow: UnitOfWorkFactory,
    request: RowBatchRequest,
    checked: Sequence[ValidRow | RowDecision],
    client: str,
) -> list[RowResult]:
    for attempt in range(MAX_ATTEMPTS):
        try:
            async with new_uow(batch=True) as uow:
                return await _apply(uow, request, checked, client)
        except BatchConflict:
            if attempt + 1 == MAX_ATTEMPTS:
                raise
            await asyncio.sleep(RETRY_PAUSE_SECONDS * (attempt + 1) * (1 + random.random()))
    raise AssertionError("unreachable")


async def _fail_alone(
    new_uow: UnitOfWorkFactory,
    request: RowBatchRequest,
    row: ValidRow | RowDecision,
    error: BatchConflict | BatchRefused,
) -> RowResult:
    """FAILED IDENTITY_CONFLICT for a row that cannot be written even alone (recorded unless dry run;
    a row recorded meanwhile keeps that outcome)."""
    message = REFUSED_MESSAGE.format(error.sqlstate) if isinstance(error, BatchRefused) else CONFLICT_MESSAGE
    failed = RowResult(row.row_number, RowOutcome.FAILED, False, None, RowReason.IDENTITY_CONFLICT, message)
    if request.dry_run:
        return failed
    for _ in range(MAX_ATTEMPTS):
        try:
            async with new_uow(batch=True) as uow:
                recorded = await uow.student_file.recorded_outcomes(request.job_id, [row.row_number])
                if row.row_number in recorded:
                    return recorded[row.row_number]
                await uow.student_file.record_outcomes(request.job_id, [failed])
                return failed
        except BatchConflict:
            continue  # recorded by another call meanwhile: read it
    return failed  # the import service records it; a replay to identity decides the row afresh


async def _apply(
    uow: UnitOfWork,
    request: RowBatchRequest,
    checked: Sequence[ValidRow | RowDecision],
    client: str,
) -> list[RowResult]:
    school = await uow.schools.get(request.school_id)
    if school is None:
        raise RollcallError(Reason.SCHOOL_NOT_FOUND, f"school {request.school_id} not found")
    recorded = await uow.student_file.recorded_outcomes(request.job_id, [row.row_number for row in checked])
    fresh = [row for row in checked if row.row_number not in recorded]
    valid = sorted((row for row in fresh if isinstance(row, ValidRow)), key=_row_number)
    batch = await _load(uow, request, valid)
    decided = {row.row_number: RowResult.of(row) for row in fresh if isinstance(row, RowDecision)}
    decided.update((row.row_number, batch.apply(row)) for row in valid)
    results = [recorded.get(row.row_number) or decided[row.row_number] for row in checked]
    if not request.dry_run and fresh:
        new_results = [r for r in results if r.row_number not in recorded]
        await uow.student_file.record_outcomes(request.job_id, new_results)
        writes = batch.writes()
        await _write(uow, request, writes, client)
        await _tell_approved(uow, school, new_results, writes)
    elif request.dry_run and request.full_roster:
        named = [(r.row_number, r.user_id) for r in results if r.user_id]
        if named:
            await uow.student_file.record_roster_preview(request.job_id, named)
    return results


async def _load(uow: UnitOfWork, request: RowBatchRequest, valid: Sequence[ValidRow]) -> RowBatch:
    stored = (
        await uow.student_file.students_named(
            request.school_id,
            list({row.username_key for row in valid}),
            list({row.email_key: row.email_identity for row in valid}.values()),
            lock=not request.dry_run,
            auth_identifier_keys=sorted({row.auth_identifier_key or "" for row in valid} - {""}),
        )
        if valid
        else []
    )
    return RowBatch(request.context, request.job_id, request.job_time, stored)


async def _write(uow: UnitOfWork, request: RowBatchRequest, writes: BatchWrites, client: str) -> None:
    """Updates before inserts (a new student may take an address an update gave up), audit last."""
    rows = uow.student_file
    if writes.park:
        await rows.park_keys(writes.park)
    if writes.updates:
        await rows.update_students(request.job_id, request.job_time, writes.updates)
    if writes.creates:
        await rows.insert_students(request.job_id, request.job_time, writes.creates)
    if writes.audit:
        school = request.school_id
        events = [NewAuditEvent(None, client, e.action, e.user_id, school, e.details) for e in writes.audit]
        await uow.audit.append_many(events)


async def _tell_approved(
    uow: UnitOfWork, school: School, results: Sequence[RowResult], writes: BatchWrites
) -> None:
    """Queue an "approved" mail for each pending student this batch approved (docs/decisions.md,
    "Issue 10 — notifications": a file's approval is told like a staff approval)."""
    approved = {r.user_id for r in results if r.approved and r.user_id}
    if not approved:
        return
    students = {s.holder.id: s.holder for s in writes.updates if s.holder.id in approved}
    told = [(h.id, h.first_name, h.email) for h in students.values() if h.status is UserStatus.ACTIVE]
    await notifications.students_approved_by_file(uow, school, told)


def _row_number(row: ValidRow) -> int:
    return row.row_number
