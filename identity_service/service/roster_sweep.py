"""The full-roster sweep (product.md Additions "Full roster and archive"): ArchiveStudentsNotInJob.

When a full-roster job completes, the import service asks identity to archive the school's ACTIVE
students who came from or were matched by files (origin STUDENT_FILE or an import mark), have file
updates on, and whom no row of the job named (identity's own recorded outcomes of the job say who
was named). Pending, declined, staff, employers and file-updates-off students are never candidates;
each candidate goes through the domain's ``users.archive`` transition.

Set-wise, in one unit of work: claim the job's sweep (``roster_sweeps``; a second call, or one
running at the same time, claims nothing and answers the first call's list), load the candidates
locked in id order, one status update, one insert of the archives (each with the student's version
after the archive, so UndoStudentRows can put it back unless it changed since), one audit insert
(``user.archived_by_file`` with ``sweep: true`` and the job), and the job's roster preview deleted.

A dry run reads the candidates and changes nothing (it claims nothing, so a later real sweep still
runs). Its "named" students are the job's recorded outcomes AND its roster preview: the students the
rows of a dry-run full-roster ApplyStudentRows named (``roster_previews``), so the dry run of a dry
run's roster tells exactly who the real sweep would archive. The real sweep reads recorded outcomes
only: a preview never spares anybody from a real sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from identity_service.domain.fields import Violations, unreadable_character_problem
from identity_service.domain.student_file import ARCHIVED_ACTION
from identity_service.domain.users import UserStatus, archive
from identity_service.service.audit_trail import event
from identity_service.service.idempotency import read
from identity_service.service.inputs import required_id
from identity_service.service.ports import SweptStudent, UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, not_found
from shared.grpc_kit.auth import Caller

JOB_ID_MAX = 128


@dataclass(frozen=True)
class SweepResult:
    archived: list[SweptStudent]
    school_students: int


async def archive_students_not_in_job(
    new_uow: UnitOfWorkFactory, caller: Caller, school_id: str, job_id: str, dry_run: bool
) -> SweepResult:
    found = Violations()
    school = required_id(school_id, "school_id", found)
    job = job_id.strip()
    if not 1 <= len(job) <= JOB_ID_MAX:
        found.add("job_id", f"is required (1..{JOB_ID_MAX} characters)")
    elif (problem := unreadable_character_problem(job)) is not None:
        found.add("job_id", problem)
    found.raise_if_any()

    async def preview(uow: UnitOfWork) -> SweepResult:
        await _school(uow, school)
        done = await uow.student_file.swept(job)
        if done:
            return SweepResult(done, await uow.student_file.count_students(school))
        students = await uow.student_file.not_named(school, job, lock=False, previews=True)
        would = [SweptStudent(s.id, s.username, s.email, None) for s in students]
        return SweepResult(would, await uow.student_file.count_students(school))

    if dry_run:
        return await read(new_uow, preview)
    async with new_uow() as uow:
        await _school(uow, school)
        if not await uow.student_file.claim_sweep(school, job):
            done = await uow.student_file.swept(job)
            return SweepResult(done, await uow.student_file.count_students(school))
        candidates = await uow.student_file.not_named(school, job, lock=True)
        for student in candidates:
            archive(student.user_type, student.status, student.file_updates_disabled)
        archived = await uow.users.set_status_many([s.id for s in candidates], UserStatus.ARCHIVED)
        now = datetime.now(UTC)
        swept = [SweptStudent(s.id, s.username, s.email, now, archived[s.id].version) for s in candidates]
        await uow.student_file.record_swept(job, swept)
        await uow.student_file.clear_roster_preview(job)
        status = [UserStatus.ACTIVE.value, UserStatus.ARCHIVED.value]
        details = {"status": status, "sweep": True, "job_id": job}
        events = [event(caller, ARCHIVED_ACTION, archived[s.id], details) for s in candidates]
        if events:
            await uow.audit.append_many(events)
        return SweepResult(swept, await uow.student_file.count_students(school))


async def _school(uow: UnitOfWork, school_id: str) -> None:
    if await uow.schools.get(school_id) is None:
        raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
