"""The student file (product.md "Import rules"): its rows, the decision table, and one batch of rows.

Three parts, each pure (no I/O):

1. **The values** the table works on: rows in (``IncomingRow``), checked rows (``ValidRow``), what the
   database knows about a user a row names (``Holder``), decisions out (``RowDecision``).

2. **The decision table**, as pure functions. ``validate_row`` is row 1 of the table; ``decide`` is
   rows 2-9, in that order of precedence, for a valid row at school S given U (the student of S with
   the row's username) and E (the user, of any type and school, with the row's email). The caller
   loads U and E, writes what the decision says, and records it. Dry runs use the very same decisions.

   Status rules beyond the table:

   - a PENDING student matched by a row that is applied (rows 6 and 7) is approved: ``approved`` is
     True, ``new_status`` is ACTIVE and the outcome is UPDATED even when no field changes;
   - a DECLINED student matched by a row stays DECLINED (staff declined them; a file does not
     overturn that), although the row may still update their fields;
   - ONGOING_SYNC never changes sensitive fields, whatever ``sensitive_fields_update`` says;
   - a blank stored auth identifier may be filled by any row (it is set, not changed); replacing a
     non-blank one with a different one is a sensitive change (row 9).

   Field rules: a blank first/last name or auth identifier in the row leaves the stored value;
   username and email differing only in letter case are not changes. ``changes`` uses User field
   names (``email``, not ``email_address``) and lists only fields whose value really changes.

3. **One batch in memory** (``RowBatch``): it starts from the students the repository loaded for the
   whole batch, indexed by username key (students and other users of the school), email key (every
   user) and email skeleton (the users whose address a row's could be confused with); every key is
   ``identity_keys``'s. Rows are applied one by one in ascending row number through ``decide``, and
   each applied row changes the in-memory students, so a later row of the batch sees what an earlier
   one did (a student created by row 5 is updated by row 9). ``writes()`` then says what to write,
   set-wise, with the audit entry of every student created or updated.

   The ordering guard: every student a file creates or applies a row to carries the ``ImportMark``
   (job time, job id, row number) of the last row applied to it. A row whose mark precedes the stored
   mark of the student it names is SKIPPED as SUPERSEDED, so the higher row of a job, and a later job,
   win whatever order the batches arrive in. Within one job only row numbers are compared (the job's
   time is the same on every batch, but need not be).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple

from identity_service.domain.emails import normalise_email
from identity_service.domain.fields import (
    AUTH_IDENTIFIER_MAX,
    NAME_MAX,
    USERNAME_MAX,
    Violations,
    clean_extra,
    clean_text,
)
from identity_service.domain.identity_keys import (
    EmailIdentity,
    auth_identifier_key,
    email_key,
    username_key,
)
from identity_service.domain.ids import new_id
from identity_service.domain.users import UserOrigin, UserStatus, UserType, archive, restore
from shared.errors import Reason, RollcallError

# ---- 1. the values ---------------------------------------------------------------------------

SENSITIVE_FIELDS_MESSAGE = "attempting to update sensitive fields without sensitive fields setting"


class ImportMode(StrEnum):
    ONGOING_SYNC = "ONGOING_SYNC"
    MANUAL_FILE = "MANUAL_FILE"


class RowOutcome(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    ARCHIVED = "ARCHIVED"  # an explicit status=archived row archived an ACTIVE student (issue 9)
    DELETED = "DELETED"  # an undo deleted a student the undone job created (issue 9)


class RowReason(StrEnum):
    INVALID_ROW = "INVALID_ROW"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    IDENTITY_CONFLICT = "IDENTITY_CONFLICT"
    FILE_UPDATES_DISABLED = "FILE_UPDATES_DISABLED"
    SENSITIVE_FIELDS_REQUIRED = "SENSITIVE_FIELDS_REQUIRED"
    SUPERSEDED = "SUPERSEDED"  # a higher-numbered row of the same job named the same student
    EMAIL_CONFUSABLE = "EMAIL_CONFUSABLE"  # the address looks like another stored address
    AUTH_IDENTIFIER_TAKEN = "AUTH_IDENTIFIER_TAKEN"  # another user of the school has that identifier
    USER_NOT_FOUND = "USER_NOT_FOUND"  # an archive row naming no student of the school (none created)
    NOT_ACTIVE = "NOT_ACTIVE"  # an archive row naming a PENDING or DECLINED student (never archived)
    CHANGED_SINCE = "CHANGED_SINCE"  # undo: something else changed the student after the job


@dataclass(frozen=True)
class IncomingRow:
    """A student-file row as received (StudentRow in the API), not yet checked."""

    row_number: int
    username: str
    email_address: str
    first_name: str = ""
    last_name: str = ""
    auth_identifier: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)
    status: str = ""  # "" or "active": an ordinary row; "archived": archive the student (any case)


ROW_STATUSES: Mapping[str, bool] = {"": False, "active": False, "archived": True}
"""A row's ``status`` (trimmed, lower case) → whether the row archives its student."""


@dataclass(frozen=True)
class ValidRow:
    """A checked row: trimmed text, ``email`` in normal form, ``extra`` cleaned."""

    row_number: int
    username: str
    email: str
    first_name: str
    last_name: str
    auth_identifier: str
    extra: Mapping[str, str] = field(default_factory=dict)
    archive: bool = False  # status=archived: archive the student the row names, change nothing else

    @cached_property
    def username_key(self) -> str:
        """What to look U up by (the school's students): ``identity_keys.username_key``."""
        return username_key(self.username)

    @cached_property
    def email_identity(self) -> EmailIdentity:
        """The address's key (what to look E up by, among every user) and skeleton."""
        return EmailIdentity.of(self.email)

    @property
    def email_key(self) -> str:
        return self.email_identity.key

    @cached_property
    def auth_identifier_key(self) -> str | None:
        """The row's auth identifier key (None when blank): ``identity_keys.auth_identifier_key``."""
        return auth_identifier_key(self.auth_identifier)


@dataclass(frozen=True)
class Holder:
    """What the database knows about a user a row names (U or E)."""

    id: str
    user_type: UserType
    school_id: str | None
    status: UserStatus
    username: str | None
    email: str
    first_name: str
    last_name: str
    auth_identifier: str
    file_updates_disabled: bool

    def is_student_of(self, school_id: str) -> bool:
        return self.user_type is UserType.STUDENT and self.school_id == school_id


@dataclass(frozen=True)
class ImportContext:
    """The job a row belongs to."""

    school_id: str
    mode: ImportMode
    sensitive_fields_update: bool = False

    @property
    def may_update_sensitive_fields(self) -> bool:
        """Only a MANUAL_FILE job with the setting may; ONGOING_SYNC never does."""
        return self.mode is ImportMode.MANUAL_FILE and self.sensitive_fields_update


@dataclass(frozen=True)
class NewStudent:
    """A student a row creates (table row 4)."""

    school_id: str
    username: str
    email: str
    first_name: str
    last_name: str
    auth_identifier: str
    status: UserStatus = UserStatus.ACTIVE
    origin: UserOrigin = UserOrigin.STUDENT_FILE


@dataclass(frozen=True)
class RowDecision:
    """The outcome of one row and what to write for it.

    ``create`` is set for CREATED; ``changes`` (User field name → new value) and ``new_status`` for
    UPDATED; ``approved`` when a PENDING student becomes ACTIVE. ``user_id`` is the student concerned
    (None for CREATED until the database assigns it, and for rows naming nobody writable).
    """

    row_number: int
    outcome: RowOutcome
    reason: RowReason | None
    message: str
    approved: bool = False
    user_id: str | None = None
    create: NewStudent | None = None
    changes: dict[str, str] = field(default_factory=dict)
    new_status: UserStatus | None = None


# ---- 2. the decision table ------------------------------------------------------------------


def validate_row(row: IncomingRow) -> ValidRow | RowDecision:
    """Row 1: the cleaned row, or a FAILED INVALID_ROW decision whose message names every bad field."""
    try:  # the common case, every field fine, without gathering (a file is mostly good rows)
        archives = ROW_STATUSES.get(row.status.strip().lower()) if row.status else False
        if row.row_number >= 1 and archives is not None:
            return ValidRow(
                row.row_number,
                clean_text(row.username, "username", max_len=USERNAME_MAX, required=True),
                normalise_email(row.email_address, "email_address"),
                clean_text(row.first_name, "first_name", max_len=NAME_MAX),
                clean_text(row.last_name, "last_name", max_len=NAME_MAX),
                clean_text(row.auth_identifier, "auth_identifier", max_len=AUTH_IDENTIFIER_MAX),
                clean_extra(row.extra) if row.extra else {},
                archives,
            )
    except RollcallError as error:
        if error.reason is Reason.EMAIL_CONFUSABLE:
            return RowDecision(row.row_number, RowOutcome.FAILED, RowReason.EMAIL_CONFUSABLE, error.message)
    return _invalid_row(row)


def _invalid_row(row: IncomingRow) -> RowDecision:
    """The FAILED INVALID_ROW decision naming every bad field of ``row``."""
    check = Violations()
    if row.row_number < 1:
        check.add("row_number", "must be 1 or more")
    check.text(row.username, "username", max_len=USERNAME_MAX, required=True)
    check.check(lambda: normalise_email(row.email_address, "email_address"), "")
    check.text(row.first_name, "first_name", max_len=NAME_MAX)
    check.text(row.last_name, "last_name", max_len=NAME_MAX)
    check.text(row.auth_identifier, "auth_identifier", max_len=AUTH_IDENTIFIER_MAX)
    no_extra: dict[str, str] = {}
    check.check(lambda: clean_extra(row.extra), no_extra)
    if row.status.strip().lower() not in ROW_STATUSES:
        check.add("status", "must be empty, active or archived")
    return RowDecision(row.row_number, RowOutcome.FAILED, RowReason.INVALID_ROW, check.message())


def decide(
    row: ValidRow,
    by_username: Holder | None,
    by_email: Holder | None,
    ctx: ImportContext,
    lookalike: Holder | None = None,
) -> RowDecision:
    """Rows 2-9 of the table, first match wins. ``by_username`` is U, ``by_email`` is E (None: nobody);
    ``lookalike`` is a user whose address looks like the row's without being it (identity_keys)."""
    if by_email is not None and not by_email.is_student_of(ctx.school_id):
        return _failed(row, RowReason.EMAIL_TAKEN, "email_address is already used by another user")
    if by_email is None and lookalike is not None:
        return _failed(
            row, RowReason.EMAIL_CONFUSABLE, "email_address looks like an address another user already has"
        )
    if by_username is not None and not by_username.is_student_of(ctx.school_id):
        # Not reachable when U is looked up among the school's students; refused rather than touched.
        return _failed(
            row, RowReason.IDENTITY_CONFLICT, "username belongs to a user who is not a student here"
        )
    if by_username is not None and by_email is not None and by_username.id != by_email.id:
        return _failed(
            row, RowReason.IDENTITY_CONFLICT, "username and email_address belong to two different students"
        )
    target = by_username or by_email
    if target is None:
        return _not_found(row) if row.archive else _create(row, ctx)
    if target.file_updates_disabled:
        return RowDecision(
            row.row_number,
            RowOutcome.SKIPPED,
            RowReason.FILE_UPDATES_DISABLED,
            "file updates are disabled for this student",
            user_id=target.id,
        )
    if row.archive:
        return _archive(row, target)
    if by_username is not None and by_email is not None:
        return _update_matched(row, target, ctx)
    return _update_sensitive(row, target, ctx)


def _not_found(row: ValidRow) -> RowDecision:
    """An archive row naming no student of the school: nothing is created."""
    return RowDecision(
        row.row_number,
        RowOutcome.SKIPPED,
        RowReason.USER_NOT_FOUND,
        "status is archived but no student of the school has this username or email_address",
    )


def _archive(row: ValidRow, target: Holder) -> RowDecision:
    """An explicit status=archived row: an ACTIVE student becomes ARCHIVED (``users.archive``), its
    other fields untouched; an ARCHIVED one is UNCHANGED; a PENDING or DECLINED one is SKIPPED."""
    if target.status is UserStatus.ARCHIVED:
        return RowDecision(row.row_number, RowOutcome.UNCHANGED, None, "already archived", user_id=target.id)
    if target.status is not UserStatus.ACTIVE:
        return RowDecision(
            row.row_number,
            RowOutcome.SKIPPED,
            RowReason.NOT_ACTIVE,
            f"status is archived but the student is {target.status}: only an ACTIVE student is archived",
            user_id=target.id,
        )
    new_status = archive(target.user_type, target.status, target.file_updates_disabled)
    return RowDecision(
        row.row_number, RowOutcome.ARCHIVED, None, "archived", user_id=target.id, new_status=new_status
    )


def _create(row: ValidRow, ctx: ImportContext) -> RowDecision:
    """Row 4: a new ACTIVE student of origin STUDENT_FILE."""
    student = NewStudent(
        school_id=ctx.school_id,
        username=row.username,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        auth_identifier=row.auth_identifier,
    )
    return RowDecision(row.row_number, RowOutcome.CREATED, None, "student created", create=student)


def _update_matched(row: ValidRow, target: Holder, ctx: ImportContext) -> RowDecision:
    """Row 6 (username and email name the same student), unless row 9 refuses an auth identifier change."""
    changes = _ordinary_changes(row, target)
    auth_change = _auth_identifier_change(row, target)
    if auth_change is not None:
        if target.auth_identifier and not ctx.may_update_sensitive_fields:
            return _failed(
                row,
                RowReason.SENSITIVE_FIELDS_REQUIRED,
                f"{SENSITIVE_FIELDS_MESSAGE} (auth_identifier differs from the stored one)",
            )
        changes["auth_identifier"] = auth_change
    return _applied(row, target, changes)


def _update_sensitive(row: ValidRow, target: Holder, ctx: ImportContext) -> RowDecision:
    """Rows 7 and 8: only one of U and E exists, so the username or the email would change."""
    if not ctx.may_update_sensitive_fields:
        return _failed(row, RowReason.SENSITIVE_FIELDS_REQUIRED, SENSITIVE_FIELDS_MESSAGE)
    changes = _ordinary_changes(row, target)
    if username_key(target.username or "") != username_key(row.username):
        changes["username"] = row.username
    if email_key(target.email) != row.email_key:
        changes["email"] = row.email
    auth_change = _auth_identifier_change(row, target)
    if auth_change is not None:
        changes["auth_identifier"] = auth_change
    return _applied(row, target, changes)


def _applied(row: ValidRow, target: Holder, changes: dict[str, str]) -> RowDecision:
    approved = target.status is UserStatus.PENDING
    unarchived = target.status is UserStatus.ARCHIVED
    if not changes and not approved and not unarchived:
        return RowDecision(row.row_number, RowOutcome.UNCHANGED, None, "no changes", user_id=target.id)
    parts = [f"updated {', '.join(changes)}"] if changes else []
    parts += ["approved"] if approved else []
    if unarchived:  # a later row naming an archived student restores it (product.md, full roster)
        parts.append("unarchived")
        return RowDecision(
            row.row_number,
            RowOutcome.UPDATED,
            None,
            "; ".join(parts),
            user_id=target.id,
            changes=changes,
            new_status=restore(target.user_type, target.status),
        )
    return RowDecision(
        row.row_number,
        RowOutcome.UPDATED,
        None,
        "; ".join(parts),
        approved=approved,
        user_id=target.id,
        changes=changes,
        new_status=UserStatus.ACTIVE if approved else None,
    )


def _ordinary_changes(row: ValidRow, target: Holder) -> dict[str, str]:
    changes: dict[str, str] = {}
    if row.first_name and row.first_name != target.first_name:
        changes["first_name"] = row.first_name
    if row.last_name and row.last_name != target.last_name:
        changes["last_name"] = row.last_name
    return changes


def _auth_identifier_change(row: ValidRow, target: Holder) -> str | None:
    if row.auth_identifier and row.auth_identifier != target.auth_identifier:
        return row.auth_identifier
    return None


def _failed(row: ValidRow, reason: RowReason, message: str) -> RowDecision:
    return RowDecision(row.row_number, RowOutcome.FAILED, reason, message)


# ---- 3. one batch of rows --------------------------------------------------------------------

SUPERSEDED_MESSAGE = "a later row or file already updated this student"
CREATED_ACTION = "user.created_by_file"
UPDATED_ACTION = "user.updated_by_file"
ARCHIVED_ACTION = "user.archived_by_file"  # an explicit status=archived row (``users.archive``)


class FieldChange(NamedTuple):
    """One field a row changed (or, in a dry run, would change), named as in ``StudentRow``."""

    field: str
    old_value: str
    new_value: str


STUDENT_ROW_FIELDS: Mapping[str, str] = {
    "username": "username",
    "email": "email_address",
    "first_name": "first_name",
    "last_name": "last_name",
    "auth_identifier": "auth_identifier",
    "status": "status",
}
"""User field name → the name a ``FieldChange`` gives it (``StudentRow``'s, plus ``status``), in the
order changes are listed. The one place the two vocabularies meet."""


def created_changes(new: NewStudent) -> tuple[FieldChange, ...]:
    """Every field a created student has (blank ones left out), old values empty."""
    changes = [FieldChange("username", "", new.username), FieldChange("email_address", "", new.email)]
    if new.first_name:
        changes.append(FieldChange("first_name", "", new.first_name))
    if new.last_name:
        changes.append(FieldChange("last_name", "", new.last_name))
    if new.auth_identifier:
        changes.append(FieldChange("auth_identifier", "", new.auth_identifier))
    changes.append(FieldChange("status", "", new.status.value))
    return tuple(changes)


def updated_changes(before: Holder, after: Holder) -> tuple[FieldChange, ...]:
    """Exactly the fields (and the status) that differ between ``before`` and ``after``."""
    changes = []
    for name, row_field in STUDENT_ROW_FIELDS.items():
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes.append(FieldChange(row_field, "" if old is None else str(old), str(new)))
    return tuple(changes)


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one row, as ApplyStudentRows returns it and the outcomes table keeps it;
    ``changes`` lists what a CREATED or UPDATED row changed (empty for every other outcome)."""

    row_number: int
    outcome: RowOutcome
    approved: bool
    user_id: str | None
    reason: RowReason | None
    message: str
    changes: tuple[FieldChange, ...] = ()

    @classmethod
    def of(
        cls, decision: RowDecision, user_id: str | None = None, changes: tuple[FieldChange, ...] = ()
    ) -> RowResult:
        return cls(
            decision.row_number,
            decision.outcome,
            decision.approved,
            user_id or decision.user_id,
            decision.reason,
            decision.message,
            changes,
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
    auth_identifier_key: str | None = None  # as stored (NULL for a duplicate the migration reported)


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


class RowBatch:
    """Apply rows in ascending row number with ``apply``; read the writes with ``writes``."""

    def __init__(
        self,
        ctx: ImportContext,
        job_id: str,
        job_time: datetime,
        stored: Iterable[StoredStudent],
        new_id: Callable[[], str] = new_id,
    ) -> None:
        self._ctx = ctx
        self._job_id = job_id
        self._job_time = job_time
        self._new_id = new_id
        self._by_username: dict[str, Student] = {}
        self._by_email: dict[str, Student] = {}
        self._by_skeleton: dict[str, list[Student]] = {}
        self._by_id: dict[str, Student] = {}
        self._by_auth: dict[str, Student] = {}  # auth identifier key → the user of the school holding it
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
        if found.auth_identifier_key is not None and found.holder.school_id == self._ctx.school_id:
            self._by_auth[found.auth_identifier_key] = student

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
        decision = self._auth_identifier_free(row, decision)
        outcome = decision.outcome
        if outcome is RowOutcome.CREATED and decision.create is not None:
            new = decision.create
            return RowResult.of(decision, self._create(new, mark), created_changes(new))
        if outcome in (RowOutcome.UPDATED, RowOutcome.UNCHANGED, RowOutcome.ARCHIVED):
            changes = self._update(self._by_id[decision.user_id or ""], decision, mark)
            return RowResult.of(decision, changes=changes)
        return RowResult.of(decision)

    def writes(self) -> BatchWrites:
        """What to write; ``audit`` lists the created students' events (by the row that last set each)
        and then the updates' (in the order the rows were applied)."""
        updates = [s for s in self._by_id.values() if s.marked and not s.is_new]
        park = [s.holder.id for s in updates if s.changed] if self._park else []
        created = sorted(self._created, key=row_of)
        audit = [AuditEntry(s.holder.id, CREATED_ACTION, self._created_details(s)) for s in created]
        return BatchWrites(self._created, updates, park, audit + self._audit)

    def _created_details(self, student: Student) -> dict[str, Any]:
        """``{field: [None, value]}`` for every field the new student has (blank ones left out), with
        the job and the row that last set it: the student as it is inserted."""
        holder = student.holder
        details: dict[str, Any] = {}
        if holder.username:
            details["username"] = [None, holder.username]
        details["email"] = [None, holder.email]
        for name in ("first_name", "last_name", "auth_identifier"):
            if getattr(holder, name):
                details[name] = [None, getattr(holder, name)]
        details["status"] = [None, str(holder.status)]
        details["origin"] = [None, str(UserOrigin.STUDENT_FILE)]
        details["job_id"], details["row_number"] = self._job_id, row_of(student)
        return details

    def _auth_identifier_free(self, row: ValidRow, decision: RowDecision) -> RowDecision:
        """``decision``, or FAILED AUTH_IDENTIFIER_TAKEN when it would give the student an auth
        identifier another user of the school holds (by ``identity_keys.auth_identifier_key``)."""
        sets = decision.create.auth_identifier if decision.create else decision.changes.get("auth_identifier")
        key = auth_identifier_key(sets) if sets else None
        holder = self._by_auth.get(key) if key else None
        if holder is None or holder.holder.id == decision.user_id:
            return decision
        return _failed(
            row,
            RowReason.AUTH_IDENTIFIER_TAKEN,
            "auth_identifier is already used by another user of the school",
        )

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
        self._take_email(student)  # its audit event is made by writes(), from its final values
        self._take_auth_identifier(holder.auth_identifier, student)
        return holder.id

    def _update(self, student: Student, decision: RowDecision, mark: ImportMark) -> tuple[FieldChange, ...]:
        """Applies an UPDATED or UNCHANGED decision to ``student``; what it changed."""
        student.mark = mark
        student.marked = True
        if decision.outcome is RowOutcome.UNCHANGED:
            return ()
        before = student.holder
        after = _changed(before, decision)
        student.holder = after
        student.changed = True
        if "username" in decision.changes:
            self._move_username(before.username or "", after.username or "", student)
        if "email" in decision.changes:
            self._move_email(after.email, student)
        if "auth_identifier" in decision.changes:
            self._move_auth_identifier(before.auth_identifier, after.auth_identifier, student)
        details: dict[str, Any] = {name: [getattr(before, name), v] for name, v in decision.changes.items()}
        if after.status is not before.status:
            details["status"] = [str(before.status), str(after.status)]
        if decision.approved:
            details["approved"] = True
        if before.status is UserStatus.ARCHIVED and after.status is UserStatus.ACTIVE:
            details["unarchived"] = True
        details["job_id"], details["row_number"] = self._job_id, mark.row_number
        action = ARCHIVED_ACTION if decision.outcome is RowOutcome.ARCHIVED else UPDATED_ACTION
        self._audit.append(AuditEntry(after.id, action, details))
        return updated_changes(before, after)

    def _move_auth_identifier(self, old: str, new: str, student: Student) -> None:
        old_key = auth_identifier_key(old) if old else None
        if old_key and self._by_auth.get(old_key) is student:
            del self._by_auth[old_key]
        self._take_auth_identifier(new, student)

    def _take_auth_identifier(self, value: str, student: Student) -> None:
        key = auth_identifier_key(value) if value else None
        if key:
            self._by_auth[key] = student

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


def row_of(student: Student) -> int:
    """The row number of the last row applied to a student the batch writes."""
    assert student.mark is not None, "a written student carries the mark of its row"
    return student.mark.row_number
