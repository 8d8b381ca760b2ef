"""One batch of student-file rows in memory: the students it names, the decisions, what to write.

``RowBatch`` starts from the students the store loaded for the whole batch, indexed by username key
(students and other users of the school), email key (every user) and email skeleton (the users whose
address a row's could be confused with); every key is ``identity_keys``'s. Rows are applied one by one in
ascending row number through the pure decision table (``import_rules.decide``), and each applied row
changes the in-memory students, so a later row of the batch sees what an earlier one did (a student
created by row 5 is updated by row 9). ``writes()`` then says what to write, set-wise.

The ordering guard: every student a file creates or applies a row to carries the ``ImportMark``
(job time, job id, row number) of the last row applied to it. A row whose mark precedes the stored
mark of the student it names is SKIPPED as SUPERSEDED, so the higher row of a job, and a later job,
win whatever order the batches arrive in. Within one job only row numbers are compared (the job's
time is the same on every batch, but need not be).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from identity_service.domain.identity_keys import EmailIdentity, username_key
from identity_service.domain.import_rules import (
    Holder,
    ImportContext,
    NewStudent,
    RowDecision,
    RowOutcome,
    RowReason,
    ValidRow,
    decide,
)
from identity_service.domain.users import UserStatus, UserType

SUPERSEDED_MESSAGE = "a later row or file already updated this student"
CREATED_ACTION = "user.created_by_file"
UPDATED_ACTION = "user.updated_by_file"
_CREATED_FIELDS = ("username", "email", "first_name", "last_name", "auth_identifier", "status", "origin")


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one row, as ApplyStudentRows returns it and the outcomes table keeps it."""

    row_number: int
    outcome: RowOutcome
    approved: bool
    user_id: str | None
    reason: RowReason | None
    message: str

    @classmethod
    def of(cls, decision: RowDecision, user_id: str | None = None) -> RowResult:
        return cls(
            decision.row_number,
            decision.outcome,
            decision.approved,
            user_id or decision.user_id,
            decision.reason,
            decision.message,
        )


@dataclass(frozen=True, slots=True)
class ImportMark:
    """Which row of which job last set a student."""

    job_time: datetime
    job_id: str
    row_number: int

    def precedes(self, other: ImportMark) -> bool:
        """True when this row comes before ``other``: a lower row of the same job, or an earlier job."""
        if self.job_id == other.job_id:
            return self.row_number < other.row_number
        return (self.job_time, self.job_id) < (other.job_time, other.job_id)


@dataclass(frozen=True, slots=True)
class StoredStudent:
    """A user the store found for the batch, with the keys stored beside its username and email."""

    holder: Holder
    mark: ImportMark | None
    username_key: str | None
    email_identity: EmailIdentity


@dataclass(slots=True)
class Student:
    """A student (or other user) as this batch sees it; ``holder`` holds the current values."""

    holder: Holder
    mark: ImportMark | None
    email_identity: EmailIdentity
    is_new: bool = False
    changed: bool = False  # a field or the status changed: version and update_time move
    marked: bool = False  # the mark moved (also for UNCHANGED rows, so the row's place is kept)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    user_id: str
    action: str
    details: dict[str, Any]


@dataclass(frozen=True)
class BatchWrites:
    """What a batch writes: ``park`` are ids whose username/email must be moved aside first."""

    creates: list[Student] = field(default_factory=list)
    updates: list[Student] = field(default_factory=list)
    park: list[str] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)


class _RandomIds:
    """Version-4 UUIDs as ``uuid.uuid4()`` makes them, from one ``os.urandom`` call per 1024 ids (a
    syscall per id showed in profiles of 1000-row batches), formatted without a ``uuid.UUID``."""

    def __init__(self, per_refill: int = 1024) -> None:
        self._size = 16 * per_refill
        self._pool = bytearray()
        self._at = 0

    def __call__(self) -> str:
        if self._at >= len(self._pool):
            self._pool, self._at = bytearray(os.urandom(self._size)), 0
        at = self._at
        self._at += 16
        chunk = self._pool[at : at + 16]
        chunk[6] = (chunk[6] & 0x0F) | 0x40  # version 4
        chunk[8] = (chunk[8] & 0x3F) | 0x80  # RFC 4122 variant
        text = chunk.hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


new_user_id = _RandomIds()


class RowBatch:
    """Apply rows in ascending row number with ``apply``; read the writes with ``writes``."""

    def __init__(
        self,
        ctx: ImportContext,
        job_id: str,
        job_time: datetime,
        stored: Iterable[StoredStudent],
        new_id: Callable[[], str] = new_user_id,
    ) -> None:
        self._ctx = ctx
        self._job_id = job_id
        self._job_time = job_time
        self._new_id = new_id
        self._by_username: dict[str, Student] = {}
        self._by_email: dict[str, Student] = {}
        self._by_skeleton: dict[str, list[Student]] = {}
        self._by_id: dict[str, Student] = {}
        self._freed: set[tuple[str, str]] = set()
        self._park = False
        self._created: list[Student] = []
        self._audit: list[AuditEntry] = []
        for found in stored:
            self._load(found)

    def _load(self, found: StoredStudent) -> None:
        student = Student(found.holder, found.mark, found.email_identity)
        self._by_id[found.holder.id] = student
        self._by_email[found.email_identity.key] = student
        self._by_skeleton.setdefault(found.email_identity.skeleton, []).append(student)
        if found.username_key is not None and found.holder.school_id == self._ctx.school_id:
            self._by_username[found.username_key] = student

    def apply(self, row: ValidRow) -> RowResult:
        """The outcome of ``row``; its effect is kept for the following rows."""
        mark = ImportMark(self._job_time, self._job_id, row.row_number)
        by_username = self._by_username.get(row.username_key)
        by_email = self._by_email.get(row.email_key)
        later = self._later_than(by_username, mark) or self._later_than(by_email, mark)
        if later is not None:
            return RowResult(
                row.row_number, RowOutcome.SKIPPED, False, later.id, RowReason.SUPERSEDED, SUPERSEDED_MESSAGE
            )
        decision = decide(
            row,
            by_username.holder if by_username else None,
            by_email.holder if by_email else None,
            self._ctx,
            None if by_email else self._lookalike(row.email_identity, by_username),
        )
        outcome = decision.outcome
        if outcome is RowOutcome.CREATED and decision.create is not None:
            return RowResult.of(decision, self._create(decision.create, mark))
        if outcome is RowOutcome.UPDATED or outcome is RowOutcome.UNCHANGED:
            self._update(self._by_id[decision.user_id or ""], decision, mark)
        return RowResult.of(decision)

    def writes(self) -> BatchWrites:
        updates = [s for s in self._by_id.values() if s.marked and not s.is_new]
        park = [s.holder.id for s in updates if s.changed] if self._park else []
        return BatchWrites(self._created, updates, park, self._audit)

    def _lookalike(self, wanted: EmailIdentity, target: Student | None) -> Holder | None:
        """A user of the batch, other than ``target`` (whose address the row replaces), whose current
        address could be confused with ``wanted``."""
        for student in self._by_skeleton.get(wanted.skeleton, ()):
            if student is not target and student.email_identity.confusable_with(wanted):
                return student.holder
        return None

    def _later_than(self, student: Student | None, mark: ImportMark) -> Holder | None:
        """The student's holder when a later row or job already set it (students of this school only)."""
        if student is None or student.mark is None or not mark.precedes(student.mark):
            return None
        holder = student.holder
        return holder if holder.is_student_of(self._ctx.school_id) else None

    def _create(self, new: NewStudent, mark: ImportMark) -> str:
        holder = Holder(
            self._new_id(),
            UserType.STUDENT,
            new.school_id,
            new.status,
            new.username,
            new.email,
            new.first_name,
            new.last_name,
            new.auth_identifier,
            False,
        )
        student = Student(
            holder, mark, EmailIdentity.of(holder.email), is_new=True, changed=True, marked=True
        )
        self._by_id[holder.id] = student
        self._created.append(student)
        self._take_username(holder.username or "", student)
        self._take_email(student)  # its audit event is written with the insert
        return holder.id

    def _update(self, student: Student, decision: RowDecision, mark: ImportMark) -> None:
        student.mark = mark
        student.marked = True
        if decision.outcome is RowOutcome.UNCHANGED:
            return
        before = student.holder
        after = _changed(before, decision)
        student.holder = after
        student.changed = True
        if "username" in decision.changes:
            self._move_username(before.username or "", after.username or "", student)
        if "email" in decision.changes:
            self._move_email(after.email, student)
        details: dict[str, Any] = {name: [getattr(before, name), v] for name, v in decision.changes.items()}
        if decision.approved:
            details["status"] = [str(before.status), str(UserStatus.ACTIVE)]
            details["approved"] = True
        details["job_id"], details["row_number"] = self._job_id, mark.row_number
        self._audit.append(AuditEntry(after.id, UPDATED_ACTION, details))

    def _move_username(self, old: str, new: str, student: Student) -> None:
        """Re-index ``student`` under its new username key (the old key is free again)."""
        old_key = username_key(old) if old else ""
        if old_key and self._by_username.get(old_key) is student:
            del self._by_username[old_key]
            self._freed.add(("username", old_key))
        if new and ("username", username_key(new)) in self._freed:
            self._park = True  # another student gave this key up in this batch: write in two steps
        self._take_username(new, student)

    def _move_email(self, new: str, student: Student) -> None:
        """Re-index ``student`` under its new email key and skeleton (the old ones are free again)."""
        old = student.email_identity
        if self._by_email.get(old.key) is student:
            del self._by_email[old.key]
            self._freed.add(("email", old.key))
        self._by_skeleton[old.skeleton].remove(student)
        student.email_identity = EmailIdentity.of(new)
        if ("email", student.email_identity.key) in self._freed:
            self._park = True
        self._take_email(student)

    def _take_username(self, value: str, student: Student) -> None:
        if value:
            self._by_username[username_key(value)] = student

    def _take_email(self, student: Student) -> None:
        identity = student.email_identity
        self._by_email[identity.key] = student
        self._by_skeleton.setdefault(identity.skeleton, []).append(student)


def _changed(before: Holder, decision: RowDecision) -> Holder:
    """``before`` with the decision's field changes and new status."""
    changes = decision.changes
    return replace(
        before,
        username=changes.get("username", before.username),
        email=changes.get("email", before.email),
        first_name=changes.get("first_name", before.first_name),
        last_name=changes.get("last_name", before.last_name),
        auth_identifier=changes.get("auth_identifier", before.auth_identifier),
        status=decision.new_status or before.status,
    )
