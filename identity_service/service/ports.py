"""What the service layer needs from the world outside: one unit of work holding every repository
(one class per table, or per feature for the student file), and the courier's mail ports.

The PostgreSQL adapters implement the repositories (``adapters/postgres``), the SMTP adapter the
mailer; the in-memory fakes of ``tests/unit/identity_service/fakes.py`` implement them all, and
``tests/integration/identity_contract`` runs the same tests against both. A repository raises
``RollcallError(EMAIL_TAKEN / USERNAME_TAKEN)`` when a write would break a uniqueness rule: the
database decides, so concurrent writers cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from identity_service.domain.email_changes import (
    AttemptCount,
    EmailChangeRecord,
    EmailChangeState,
    NewEmailChange,
)
from identity_service.domain.identity_keys import EmailIdentity
from identity_service.domain.mail import OutgoingMail
from identity_service.domain.student_file import RowResult, StoredStudent, Student
from identity_service.domain.undo import RecordedChange, SweptArchive
from identity_service.domain.users import User, UserStatus, UserType
from identity_service.service.models import AuditEvent, NewAuditEvent, School, StoredResponse


@dataclass(frozen=True)
class UserSearch:
    """One page of a search: users of ``school_id`` whose names, email or username contain ``text``
    (any case; empty: everyone), of these types and statuses (empty: any), by (last name, first name,
    id); ``after`` is the ``search_cursor`` of the previous page's last user."""

    school_id: str
    text: str
    user_types: Sequence[UserType]
    statuses: Sequence[UserStatus]
    after: tuple[Any, ...] | None
    limit: int


class Schools(Protocol):
    async def add(self, school: School) -> School: ...

    async def get(self, school_id: str, *, for_update: bool = False) -> School | None: ...

    async def update(self, school: School) -> School:
        """Store every field of ``school`` but its id and create_time (SCHOOL_NOT_FOUND when gone)."""
        ...


class Users(Protocol):
    async def add(self, user: User, password_hash: str | None) -> User:
        """Insert; ``create_time``/``update_time``/``version`` of the argument are ignored."""
        ...

    async def get(self, user_id: str, *, for_update: bool = False) -> User | None: ...

    async def by_email(self, email: str) -> User | None:
        """The user holding ``email`` (compared by ``identity_keys.email_key``)."""
        ...

    async def by_auth_identifier(self, school_id: str, subject: str) -> User | None:
        """The user of ``school_id`` whose auth identifier has the key of ``subject``
        (``identity_keys.auth_identifier_key``); None for a blank subject."""
        ...

    async def lookalike_of(self, email: str, *, other_than: str | None = None) -> User | None:
        """A user (not ``other_than``) whose address looks like ``email`` without being it
        (``EmailIdentity.confusable_with``)."""
        ...

    async def set_status(self, user_id: str, status: UserStatus) -> User: ...

    async def get_many(self, user_ids: Sequence[str], *, for_update: bool = False) -> dict[str, User]:
        """The users among ``user_ids`` that exist, by id, in one query (locked in id order when
        ``for_update``, so two batches over the same users never deadlock)."""
        ...

    async def set_status_many(self, user_ids: Sequence[str], status: UserStatus) -> dict[str, User]:
        """Set the status of every user of ``user_ids`` in one statement; the updated users by id."""
        ...

    async def set_file_updates_disabled(self, user_id: str, disabled: bool) -> User: ...

    async def delete(self, user_id: str) -> None: ...

    async def credentials(self, email: str) -> tuple[User, str | None] | None:
        """The holder of ``email`` and its password hash (None when it has none)."""
        ...

    async def change_email(self, user_id: str, email: str, password_hash: str | None) -> User:
        """Set a confirmed address (and ``email_verified``), and the password when a hash is given;
        EMAIL_TAKEN when another user holds the address."""
        ...

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> None:
        """Store a rehash of the same password unless the stored hash is no longer ``old_hash``."""
        ...

    async def search(self, search: UserSearch) -> list[User]: ...

    async def pending(self, school_id: str, after: tuple[Any, ...] | None, limit: int) -> list[User]:
        """PENDING students of the school, oldest first; ``after`` is (create_time, id) of the last one."""
        ...

    async def duplicate_candidates(self, user: User, limit: int) -> list[tuple[User, float]]:
        """Other students of ``user``'s school who may be the same person, with the trigram similarity
        of their names to ``user``'s (0..1)."""
        ...


class Audit(Protocol):
    async def append(self, event: NewAuditEvent) -> None: ...

    async def append_many(self, events: Sequence[NewAuditEvent]) -> None:
        """Append the events in one go, in this order (ids grow in it)."""
        ...

    async def list(
        self, school_id: str | None, user_id: str | None, before_id: int | None, limit: int
    ) -> list[AuditEvent]:
        """Newest first; ``before_id`` is the id of the previous page's last event."""
        ...


class Idempotency(Protocol):
    """First answers by (client, actor, request_id); ``actor`` is '' for calls without one."""

    async def lock(self, client: str, actor: str, request_id: str) -> None:
        """Serialise requests sharing a key until the end of the transaction."""
        ...

    async def find(
        self, client: str, actor: str, request_id: str, fingerprint: bytes
    ) -> StoredResponse | None:
        """The stored answer of the key (``fingerprint``: of the request asking, see the adapter)."""
        ...

    async def save(self, client: str, actor: str, request_id: str, stored: StoredResponse) -> None: ...


class EmailChanges(Protocol):
    async def pending(self, user_id: str, *, for_update: bool = False) -> EmailChangeRecord | None:
        """The user's one PENDING change, if any."""
        ...

    async def latest(self, user_id: str) -> EmailChangeRecord | None:
        """The user's most recent change, whatever its state."""
        ...

    async def open(self, change: NewEmailChange) -> EmailChangeRecord:
        """Insert a PENDING change (close the user's previous one first)."""
        ...

    async def close_pending(self, user_id: str, state: EmailChangeState) -> EmailChangeRecord | None: ...

    async def count_attempt(self, change_id: str) -> AttemptCount | None:
        """Count one try atomically; None when no try is left or the change is not PENDING."""
        ...

    async def set_state(self, change_id: str, state: EmailChangeState) -> bool: ...

    async def get(self, change_id: str) -> EmailChangeRecord | None: ...

    async def issue_code(self, change_id: str, code_hash: str) -> bool:
        """Store the hash of a newly issued code on a change still PENDING and not expired; False when
        it is closed or overdue (its code must not be sent)."""
        ...

    async def expire_overdue(self, limit: int = 1000) -> int:
        """Close (EXPIRED) up to ``limit`` PENDING changes whose code has expired; returns how many."""
        ...


@dataclass(frozen=True)
class OutboxMessage:
    """A claimed message, as the courier sees it. ``attempts`` counts the failed sends so far."""

    id: int
    created_at: datetime
    to_address: str
    subject: str
    body: str
    kind: str
    school_id: str | None
    user_id: str | None
    attempts: int
    email_change_id: str | None = None


class Outbox(Protocol):
    """The mail outbox: use cases enqueue in their transaction; the courier claims (a lease, so
    couriers never hold one message at once), sends and settles. A SENT or ABANDONED message's body
    is erased."""

    async def enqueue(self, mail: OutgoingMail) -> int:
        """Queue ``mail`` in this transaction; the courier sends it after commit."""
        ...

    async def enqueue_many(self, mails: Sequence[OutgoingMail]) -> None:
        """Queue ``mails`` in this transaction, in one statement (nothing for none)."""
        ...

    async def discard_pending(self, user_id: str, kind: str) -> int:
        """Abandon the user's unsent mail of ``kind``."""
        ...

    async def claim_due(self, limit: int, lease_seconds: float) -> list[OutboxMessage]:
        """Lease up to ``limit`` due PENDING messages nobody holds, for ``lease_seconds``; by id."""
        ...

    async def mark_sent(self, message_id: int) -> None: ...

    async def mark_failed(
        self, message_id: int, error: str, next_attempt_at: datetime, abandon: bool
    ) -> None:
        """Count a failed send; ``abandon`` gives the message up, else it is due at ``next_attempt_at``."""
        ...

    async def release(self, message_ids: Sequence[int]) -> None:
        """Give back the leases of messages not tried."""
        ...

    async def abandon(self, message_id: int, reason: str) -> None:
        """Give a message up without sending it (not a failed send)."""
        ...

    async def purge_finished(self, older_than: timedelta, limit: int = 10_000) -> int:
        """Delete up to ``limit`` SENT or ABANDONED messages created more than ``older_than`` ago."""
        ...


class Notifications(Protocol):
    """What the notification mails need besides the outbox (``service/notifications.py``): new pending
    requests for the digest, each school's digest claim, and the events already turned into mail."""

    async def note_pending(self, school_id: str, user_id: str) -> None:
        """Remember a new pending request until a digest counts it."""
        ...

    async def digest_schools(self, not_since: datetime, limit: int = 1000) -> list[str]:
        """Schools with new pending requests whose last digest was at ``not_since`` or before (or that
        never had one)."""
        ...

    async def claim_digest(self, school_id: str, not_since: datetime) -> bool:
        """Lock the school's digest claim until this transaction ends, if its last digest was at
        ``not_since`` or before and no other transaction holds it; False otherwise."""
        ...

    async def take_new_pending(self, school_id: str) -> int:
        """Forget the school's new pending requests; how many of them are still PENDING."""
        ...

    async def pending_summary(self, school_id: str) -> tuple[int, datetime | None]:
        """The school's PENDING students: how many, and when the oldest signed up."""
        ...

    async def mark_digest(self, school_id: str, at: datetime, new_requests: int) -> None:
        """The school's digest was queued at ``at`` (its claim moves on)."""
        ...

    async def oldest_pending(self) -> datetime | None:
        """When the oldest PENDING student of any school signed up."""
        ...

    async def claim_event(self, event_id: str, event_type: str, subject: str, mails: int) -> bool:
        """Record that the event was turned into ``mails`` mails; False when it already was (held
        until this transaction ends, so a concurrent delivery of the same event waits and gets False)."""
        ...

    async def purge_events(self, older_than: timedelta, limit: int = 10_000) -> int:
        """Forget up to ``limit`` events recorded more than ``older_than`` ago."""
        ...


class RateLimits(Protocol):
    async def hit(self, scope: str, subject: str, window: timedelta, limit: int) -> bool:
        """Record one event if fewer than ``limit`` happened within ``window``; False when over."""
        ...

    async def clear(self, scope: str, subject: str) -> None: ...

    async def purge(self, older_than: timedelta, limit: int = 10_000) -> int:
        """Delete up to ``limit`` events older than ``older_than``; returns how many."""
        ...


class BatchConflict(Exception):
    """A concurrent writer got in the way of a student-file batch: a username or email taken between
    read and write, a deadlock, a serialization failure, or another call recorded the same rows first.
    The transaction is rolled back; applying the whole batch again sees the new state."""


class BatchRefused(Exception):
    """The database refused a student-file batch's writes for something they hold (a constraint, a
    value, a trigger), not because it is unreachable. Rolled back; applying the same rows again fails
    again, so the batch is split until the row that causes it is alone (``sqlstate`` says what it was)."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"the database refused the batch (SQLSTATE {sqlstate})")
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class SweptStudent:
    """A student a full-roster sweep archived (``archive_time`` None: a dry run's would-be archive);
    ``user_version``: the student's version right after the archive (kept for undo; None in a dry run
    and for archives recorded before it was kept)."""

    user_id: str
    username: str | None
    email: str
    archive_time: datetime | None
    user_version: int | None = None


class StudentFile(Protocol):
    """The student file's persistence: the users a batch names and the outcomes of its rows. Every
    method is one statement (one round trip), whatever the number of rows."""

    async def recorded_outcomes(self, job_id: str, row_numbers: Sequence[int]) -> dict[int, RowResult]:
        """The outcomes already recorded for these rows of the job, by row number."""
        ...

    async def students_named(
        self,
        school_id: str,
        username_keys: Sequence[str],
        emails: Sequence[EmailIdentity],
        *,
        lock: bool,
        auth_identifier_keys: Sequence[str] = (),
    ) -> list[StoredStudent]:
        """Users of the school whose username key is in ``username_keys``, users of any school whose
        email key is one of ``emails``', users of the school whose auth identifier key is in
        ``auth_identifier_keys``, and users whose address could be confused with one of them;
        with ``lock``, locked FOR UPDATE in id order (the same order in every call, so concurrent
        batches do not deadlock on them)."""
        ...

    async def record_outcomes(self, job_id: str, results: Sequence[RowResult]) -> None:
        """Keep the outcomes; raises BatchConflict when any of these rows was recorded meanwhile."""
        ...

    async def park_keys(self, user_ids: Sequence[str]) -> None:
        """Move the usernames and emails of these users aside, so the batch can hand keys around."""
        ...

    async def update_students(self, job_id: str, job_time: datetime, students: Sequence[Student]) -> None:
        """Write the students' current values and import marks; bump version when ``changed``."""
        ...

    async def insert_students(self, job_id: str, job_time: datetime, students: Sequence[Student]) -> None:
        """Insert new students (origin STUDENT_FILE) with their import marks (audit: ``Audit``)."""
        ...

    async def claim_sweep(self, school_id: str, job_id: str) -> bool:
        """Mark the job's full-roster sweep as done in this transaction: False when it already was (or
        another transaction holds the claim until it ends)."""
        ...

    async def swept(self, job_id: str) -> list[SweptStudent]:
        """The students the job's sweep archived, by user id."""
        ...

    async def record_roster_preview(self, job_id: str, named: Sequence[tuple[int, str]]) -> None:
        """Remember (row number, user id) of a dry-run full-roster batch's rows that named a student;
        a row already remembered keeps its first user."""
        ...

    async def not_named(
        self, school_id: str, job_id: str, *, lock: bool, previews: bool = False
    ) -> list[User]:
        """The school's ACTIVE students with file updates on who came from or were matched by files
        (origin STUDENT_FILE or an import mark) and whom no recorded row of the job names (with
        ``previews``, nor a row of the job's dry-run roster preview), by id; with ``lock``, locked
        FOR UPDATE in id order."""
        ...

    async def record_swept(self, job_id: str, students: Sequence[SweptStudent]) -> None:
        """Keep the students the job's sweep archived (with their version after the archive)."""
        ...

    async def clear_roster_preview(self, job_id: str) -> None:
        """Forget the job's dry-run roster preview."""
        ...

    async def count_students(self, school_id: str) -> int:
        """The school's students, any status."""
        ...


class UndoClaim(StrEnum):
    CLAIMED = "CLAIMED"  # this undo job now undoes the job
    REPEATED = "REPEATED"  # this undo job already did (its recorded outcomes are the answer)
    REFUSED = "REFUSED"  # another undo job did, or the job is an undo itself


class JobUndos(Protocol):
    """Undo of an import job (issue 9): what the job did, the students now, and who undid what."""

    async def claim(self, job_id: str, undo_job_id: str) -> UndoClaim:
        """Record that ``undo_job_id`` undoes ``job_id`` (held until this transaction ends)."""
        ...

    async def job_changes(self, job_id: str) -> list[RecordedChange]:
        """The job's recorded outcomes that changed a student (CREATED, UPDATED, ARCHIVED)."""
        ...

    async def job_sweep(self, job_id: str) -> list[SweptArchive]:
        """The students the job's full-roster sweep archived, by user id."""
        ...

    async def students(self, user_ids: Sequence[str]) -> list[tuple[StoredStudent, int]]:
        """These users as stored, with their version, locked FOR UPDATE in id order."""
        ...

    async def delete_students(self, user_ids: Sequence[str]) -> None:
        """Delete these users (students the undone job created)."""
        ...

    async def replay(self, undo_job_id: str) -> list[RowResult]:
        """The undo job's recorded outcomes, by row number."""
        ...


class UnitOfWork(Protocol):
    """One transaction: everything done through its repositories commits or rolls back together."""

    @property
    def schools(self) -> Schools: ...

    @property
    def users(self) -> Users: ...

    @property
    def audit(self) -> Audit: ...

    @property
    def idempotency(self) -> Idempotency: ...

    @property
    def email_changes(self) -> EmailChanges: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def rate_limits(self) -> RateLimits: ...

    @property
    def student_file(self) -> StudentFile: ...

    @property
    def undos(self) -> JobUndos: ...

    @property
    def notifications(self) -> Notifications: ...


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work (one transaction, committed on a clean exit, else rolled back).

    - ``read_only``: no transaction; each query is one round trip (use cases that only read);
    - ``autocommit``: no transaction either, and each statement commits on its own (the courier's
      bookkeeping: a claim, a SENT mark must hold whatever happens next);
    - ``batch``: the database's refusals leave it as ``BatchConflict`` (a unique or exclusion
      violation, a deadlock, a serialization failure) or ``BatchRefused`` (anything else but an
      outage), rolled back; an unreachable database is raised as it is (the caller answers
      UNAVAILABLE)."""

    def __call__(
        self, *, read_only: bool = False, autocommit: bool = False, batch: bool = False
    ) -> AbstractAsyncContextManager[UnitOfWork]: ...


class Mailer(Protocol):
    """Sends one mail (the SMTP adapter)."""

    def where(self) -> Mapping[str, object]:
        """Where it sends, for the logs (no secret)."""
        ...

    async def send(self, message: OutboxMessage) -> None:
        """Hand ``message`` to the mail server; ``SendFailed`` when it could not."""
        ...


class SendFailed(Exception):
    """A mail was not handed over. ``error`` holds no address or code; ``permanent`` when retrying
    cannot help (a malformed header, a recipient refused with 5xx)."""

    def __init__(self, error: str, *, permanent: bool) -> None:
        super().__init__(error)
        self.error = error
        self.permanent = permanent


class MailNotices(Protocol):
    """Wake-ups when a use case commits a mail (PostgreSQL's NOTIFY outbox)."""

    async def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` on every notice from now on; reconnects when the listener was lost, and only
        logs when it cannot (the courier then polls)."""
        ...

    async def close(self) -> None: ...


def search_cursor(user: User) -> tuple[Any, ...]:
    """Where a search page ends (the repository compares the names case-insensitively, as it sorts)."""
    return (user.last_name, user.first_name, user.id)


def pending_cursor(user: User) -> tuple[Any, ...]:
    """Where a pending-queue page ends."""
    return (user.create_time.isoformat(), user.id)
