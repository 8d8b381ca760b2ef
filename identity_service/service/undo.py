"""UndoStudentRows (issue 9): puts back what one import job did, one outcome per student.

Works from identity's own records of the job: its recorded outcomes and the students its full-roster
sweep archived (``roster_archives``, with each student's version after the archive); the import
service names the job, the undo job and its time. In one ``batch=True`` unit of work:

1. ``uow.undos.claim``: the undo job undoes the job (a job is undone once; an undo is never undone →
   ``JOB_NOT_UNDOABLE``); the same undo job again answers its recorded outcomes (idempotent);
2. the job's changes and its sweep folded per student (``domain.undo.touches``), the students now
   (locked, with their version), the holders of the keys a revert would take back;
3. per student the pure ``decide_undo`` / ``key_clashes``: revert (a swept student ARCHIVED → ACTIVE),
   delete (created by the job) or SKIPPED ``CHANGED_SINCE``;
4. the outcomes recorded under the undo job (row numbers 1..n: the students the job's rows changed in
   the order of the job's first row per student, then the swept students by user id), keys parked,
   reverts written, created students deleted, one audit event per change naming the undo
   (``undo_of_job_id``) — one statement each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from identity_service.domain.identity_keys import EmailIdentity, auth_identifier_key, username_key
from identity_service.domain.student_file import (
    ImportMark,
    RowOutcome,
    RowReason,
    RowResult,
    Student,
)
from identity_service.domain.undo import (
    UNDO_DELETED_ACTION,
    UNDO_UPDATED_ACTION,
    UndoAction,
    UndoDecision,
    decide_undo,
    key_clashes,
    touches,
)
from identity_service.service.models import NewAuditEvent
from identity_service.service.ports import BatchConflict, UndoClaim, UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, RollcallError

MAX_ATTEMPTS = 5
RETRY_PAUSE_SECONDS = 0.02


@dataclass(frozen=True)
class UndoRequest:
    """Undo ``job_id`` (a job of ``school_id``) as the import job ``undo_job_id`` created at ``undo_time``."""

    school_id: str
    job_id: str
    undo_job_id: str
    undo_time: datetime


async def undo_student_rows(new_uow: UnitOfWorkFactory, request: UndoRequest, client: str) -> list[RowResult]:
    """One result per student the job changed (row numbers 1..n); ``client`` goes to the audit."""
    if request.job_id == request.undo_job_id:
        raise RollcallError(Reason.JOB_NOT_UNDOABLE, "a job cannot undo itself")
    for attempt in range(MAX_ATTEMPTS):
        try:
            async with new_uow(batch=True) as uow:
                return await _undo(uow, request, client)
        except BatchConflict:
            if attempt + 1 == MAX_ATTEMPTS:
                raise RollcallError(Reason.UNAVAILABLE, "the undo kept conflicting; try again") from None
            await asyncio.sleep(RETRY_PAUSE_SECONDS * (attempt + 1))
    raise AssertionError("unreachable")


async def _undo(uow: UnitOfWork, request: UndoRequest, client: str) -> list[RowResult]:
    if await uow.schools.get(request.school_id) is None:
        raise RollcallError(Reason.SCHOOL_NOT_FOUND, f"school {request.school_id} not found")
    claim = await uow.undos.claim(request.job_id, request.undo_job_id)
    if claim is UndoClaim.REFUSED:
        raise RollcallError(Reason.JOB_NOT_UNDOABLE, f"job {request.job_id} is an undo or was already undone")
    if claim is UndoClaim.REPEATED:
        return await uow.undos.replay(request.undo_job_id)
    touched = touches(await uow.undos.job_changes(request.job_id), await uow.undos.job_sweep(request.job_id))
    now = {
        stored.holder.id: (stored, version)
        for stored, version in await uow.undos.students([t.user_id for t in touched])
    }
    decisions = []
    for touch in touched:
        stored, version = now.get(touch.user_id, (None, None))
        if stored is not None and stored.holder.school_id != request.school_id:
            stored, version = None, None  # not this school's student (any more): never touched here
        decisions.append(decide_undo(touch, stored, version))
    reverts = [d.after for d in decisions if d.action is UndoAction.REVERT and d.after is not None]
    holders = (
        await uow.student_file.students_named(
            request.school_id,
            sorted({username_key(h.username) for h in reverts if h.username}),
            list({EmailIdentity.of(h.email).key: EmailIdentity.of(h.email) for h in reverts}.values()),
            lock=True,
            auth_identifier_keys=sorted(
                {auth_identifier_key(h.auth_identifier) or "" for h in reverts} - {""}
            ),
        )
        if reverts
        else []
    )
    decisions = key_clashes(decisions, holders)
    results = [_result(number, d) for number, d in enumerate(decisions, start=1)]
    await uow.student_file.record_outcomes(request.undo_job_id, results)
    await _write(uow, request, decisions, client)
    return results


def _result(row_number: int, decision: UndoDecision) -> RowResult:
    user_id = decision.touch.user_id
    if decision.action is UndoAction.SKIP:
        return RowResult(
            row_number, RowOutcome.SKIPPED, False, user_id, RowReason.CHANGED_SINCE, decision.message
        )
    if decision.action is UndoAction.DELETE:
        return RowResult(
            row_number, RowOutcome.DELETED, False, user_id, None, decision.message, decision.changes
        )
    return RowResult(row_number, RowOutcome.UPDATED, False, user_id, None, "undone", decision.changes)


async def _write(
    uow: UnitOfWork, request: UndoRequest, decisions: Sequence[UndoDecision], client: str
) -> None:
    updates: list[Student] = []
    park: list[str] = []
    deletes: list[str] = []
    events: list[NewAuditEvent] = []
    for number, d in enumerate(decisions, start=1):
        details: dict[str, Any] = {"undo_of_job_id": request.job_id, "job_id": request.undo_job_id}
        if d.action is UndoAction.REVERT and d.before is not None and d.after is not None:
            mark = ImportMark(request.undo_time, request.undo_job_id, number)
            updates.append(Student(d.after, mark, EmailIdentity.of(d.after.email), changed=True, marked=True))
            if d.before.username != d.after.username or d.before.email != d.after.email:
                park.append(d.after.id)
            for change in d.changes:
                details[change.field] = [change.old_value, change.new_value]
            events.append(
                NewAuditEvent(None, client, UNDO_UPDATED_ACTION, d.after.id, request.school_id, details)
            )
        elif d.action is UndoAction.DELETE and d.before is not None:
            deletes.append(d.before.id)
            details["email"] = d.before.email
            events.append(
                NewAuditEvent(None, client, UNDO_DELETED_ACTION, d.before.id, request.school_id, details)
            )
    if deletes:  # first: a revert may take back a key a deleted student held
        await uow.undos.delete_students(deletes)
    if park:
        await uow.student_file.park_keys(park)
    if updates:
        await uow.student_file.update_students(request.undo_job_id, request.undo_time, updates)
    if events:
        await uow.audit.append_many(events)
