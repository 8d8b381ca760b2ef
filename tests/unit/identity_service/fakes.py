"""In-memory fakes of identity's ports: a unit of work over plain dicts, a mailer, mail notices.

``FakeDatabase`` holds the tables; ``FakeUnitOfWork`` works on a copy and puts it back on a clean
exit (a rollback is forgetting the copy), so a use case that fails leaves nothing behind, as over
PostgreSQL. Uniqueness is checked by the identity keys, as the unique indexes do. The contract tests
(``tests/integration/identity_contract``) run the same repository tests against these and the
PostgreSQL adapters, so the fakes cannot drift.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_service.domain.email_changes import (
    AttemptCount,
    EmailChangeRecord,
    EmailChangeState,
    NewEmailChange,
)
from identity_service.domain.events import ChangeEvent, change_event
from identity_service.domain.identity_keys import EmailIdentity, auth_identifier_key, email_key, username_key
from identity_service.domain.mail import OutgoingMail
from identity_service.domain.student_file import Holder, RowResult, StoredStudent, Student
from identity_service.domain.undo import RecordedChange, SweptArchive
from identity_service.domain.users import User, UserOrigin, UserStatus, UserType
from identity_service.service.models import AuditEvent, NewAuditEvent, School, StoredResponse
from identity_service.service.ports import (
    BatchConflict,
    OutboxMessage,
    SendFailed,
    SweptStudent,
    UndoClaim,
    UserSearch,
)
from shared.errors import Reason, RollcallError, not_found


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FakeDatabase:
    """The tables, by key."""

    schools: dict[str, School] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    passwords: dict[str, str | None] = field(default_factory=dict)
    marks: dict[str, tuple[datetime, str, int]] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    events: list[ChangeEvent] = field(default_factory=list)  # the event outbox, in commit order
    answers: dict[tuple[str, str, str], tuple[StoredResponse, datetime]] = field(default_factory=dict)
    changes: dict[str, EmailChangeRecord] = field(default_factory=dict)
    outbox: dict[int, dict[str, Any]] = field(default_factory=dict)
    rate_events: list[tuple[str, datetime]] = field(default_factory=list)
    outcomes: dict[tuple[str, int], RowResult] = field(default_factory=dict)
    sweeps: dict[str, list[SweptStudent]] = field(default_factory=dict)  # roster sweeps by job
    previews: dict[tuple[str, int], str] = field(default_factory=dict)  # roster_previews: (job, row) → user
    outcome_versions: dict[tuple[str, int], int] = field(default_factory=dict)  # user_version (undo)
    undos: dict[str, str] = field(default_factory=dict)  # job id → the undo job's id
    pending_items: dict[str, str] = field(default_factory=dict)  # pending_digest_items: user → school
    digests: dict[str, tuple[datetime, int]] = field(default_factory=dict)  # school → (last time, count)
    notified_events: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # event id → (type, …)
    opened: list[dict[str, bool]] = field(default_factory=list)  # the options of every unit of work

    def factory(self) -> Callable[..., Any]:
        """A ``UnitOfWorkFactory`` on this database."""

        @asynccontextmanager
        async def open_uow(
            *, read_only: bool = False, autocommit: bool = False, batch: bool = False
        ) -> AsyncIterator[FakeUnitOfWork]:
            self.opened.append({"read_only": read_only, "autocommit": autocommit, "batch": batch})
            if read_only or autocommit:
                yield FakeUnitOfWork(self)
                return
            work = copy.deepcopy(self)
            yield FakeUnitOfWork(work)
            for name in (f.name for f in dataclasses.fields(self) if f.name != "opened"):
                setattr(self, name, getattr(work, name))

        return open_uow


class FakeUnitOfWork:
    def __init__(self, db: FakeDatabase) -> None:
        self.schools = FakeSchools(db)
        self.users = FakeUsers(db)
        self.audit = FakeAudit(db)
        self.idempotency = FakeIdempotency(db)
        self.email_changes = FakeEmailChanges(db)
        self.outbox = FakeOutbox(db)
        self.rate_limits = FakeRateLimits(db)
        self.student_file = FakeStudentFile(db)
        self.undos = FakeJobUndos(db)
        self.notifications = FakeNotifications(db)


class FakeSchools:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def add(self, school: School) -> School:
        self._db.schools[school.id] = school
        return school

    async def get(self, school_id: str, *, for_update: bool = False) -> School | None:
        return self._db.schools.get(school_id)

    async def update(self, school: School) -> School:
        stored = self._db.schools.get(school.id)
        if stored is None:
            raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
        updated = replace(school, create_time=stored.create_time)
        self._db.schools[school.id] = updated
        return updated


class FakeUsers:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    def _check_unique(self, user: User) -> None:
        mine = EmailIdentity.of(user.email)
        for other in self._db.users.values():
            if other.id == user.id:
                continue
            theirs = EmailIdentity.of(other.email)
            if theirs.key == mine.key:
                raise RollcallError(Reason.EMAIL_TAKEN, "the email address is already used by another user")
            if theirs.confusable_with(mine):
                raise RollcallError(
                    Reason.EMAIL_CONFUSABLE,
                    "the email address looks like an address another user already has",
                )
            same_school = other.school_id == user.school_id and user.school_id is not None
            named = same_school and user.username and other.username
            if named and username_key(other.username or "") == username_key(user.username or ""):
                raise RollcallError(Reason.USERNAME_TAKEN, "the username is already used at this school")
            auth = auth_identifier_key(user.auth_identifier)
            if same_school and auth is not None and auth == auth_identifier_key(other.auth_identifier):
                raise RollcallError(
                    Reason.AUTH_IDENTIFIER_TAKEN,
                    "the auth identifier is already used by another user of this school",
                )

    async def add(self, user: User, password_hash: str | None) -> User:
        now = _now()
        stored = replace(user, create_time=now, update_time=now, version=1)
        self._check_unique(stored)
        self._db.users[user.id] = stored
        self._db.passwords[user.id] = password_hash
        return stored

    async def get(self, user_id: str, *, for_update: bool = False) -> User | None:
        return self._db.users.get(user_id)

    async def by_email(self, email: str) -> User | None:
        key = email_key(email)
        return next((u for u in self._db.users.values() if email_key(u.email) == key), None)

    async def by_auth_identifier(self, school_id: str, subject: str) -> User | None:
        key = auth_identifier_key(subject)
        found = (
            u
            for u in self._db.users.values()
            if key is not None and u.school_id == school_id and auth_identifier_key(u.auth_identifier) == key
        )
        return next(found, None)

    async def lookalike_of(self, email: str, *, other_than: str | None = None) -> User | None:
        wanted = EmailIdentity.of(email)
        for user in self._db.users.values():
            if user.id != other_than and EmailIdentity.of(user.email).confusable_with(wanted):
                return user
        return None

    async def _change(self, user_id: str, **values: Any) -> User:
        user = self._db.users.get(user_id)
        if user is None:
            raise not_found(Reason.USER_NOT_FOUND, "user")
        changed = replace(user, **values, update_time=_now(), version=user.version + 1)
        self._check_unique(changed)
        self._db.users[user_id] = changed
        return changed

    async def set_status(self, user_id: str, status: UserStatus) -> User:
        return await self._change(user_id, status=status)

    async def get_many(self, user_ids: Sequence[str], *, for_update: bool = False) -> dict[str, User]:
        return {i: self._db.users[i] for i in sorted(set(user_ids)) if i in self._db.users}

    async def set_status_many(self, user_ids: Sequence[str], status: UserStatus) -> dict[str, User]:
        known = [i for i in dict.fromkeys(user_ids) if i in self._db.users]
        return {i: await self._change(i, status=status) for i in known}

    async def set_file_updates_disabled(self, user_id: str, disabled: bool) -> User:
        return await self._change(user_id, file_updates_disabled=disabled)

    async def delete(self, user_id: str) -> None:
        self._db.users.pop(user_id, None)
        self._db.passwords.pop(user_id, None)

    async def credentials(self, email: str) -> tuple[User, str | None] | None:
        user = await self.by_email(email)
        return (user, self._db.passwords.get(user.id)) if user else None

    async def change_email(self, user_id: str, email: str, password_hash: str | None) -> User:
        changed = await self._change(user_id, email=email, email_verified=True)
        if password_hash is not None:
            self._db.passwords[user_id] = password_hash
        return changed

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> None:
        if self._db.passwords.get(user_id) == old_hash:
            self._db.passwords[user_id] = new_hash

    async def search(self, search: UserSearch) -> list[User]:
        text = search.text.lower()

        def matches(u: User) -> bool:
            name = f"{u.first_name} {u.last_name}".lower()
            contact = f"{u.email} {u.username or ''}".lower()
            return (
                u.school_id == search.school_id
                and (not text or text in name or text in contact)
                and (not search.user_types or u.user_type in search.user_types)
                and (not search.statuses or u.status in search.statuses)
            )

        def order(u: User) -> tuple[str, str, str]:
            return (u.last_name.lower(), u.first_name.lower(), u.id)

        found = sorted((u for u in self._db.users.values() if matches(u)), key=order)
        if search.after is not None:
            last, first, last_id = search.after
            found = [u for u in found if order(u) > (last.lower(), first.lower(), last_id)]
        return found[: search.limit]

    async def pending(self, school_id: str, after: tuple[Any, ...] | None, limit: int) -> list[User]:
        queue = sorted(
            (
                u
                for u in self._db.users.values()
                if u.school_id == school_id and u.status is UserStatus.PENDING
            ),
            key=lambda u: (u.create_time, u.id),
        )
        if after is not None:
            when = datetime.fromisoformat(after[0]) if isinstance(after[0], str) else after[0]
            queue = [u for u in queue if (u.create_time, u.id) > (when, after[1])]
        return queue[:limit]

    async def duplicate_candidates(self, user: User, limit: int) -> list[tuple[User, float]]:
        """Students of the school with the same names, local part or auth identifier (similarity 1.0
        for equal names, else 0.0: the trigram scoring is PostgreSQL's)."""
        me_name = f"{user.first_name} {user.last_name}".lower()
        me_local = user.email.rpartition("@")[0].lower()
        found = []
        for other in self._db.users.values():
            if (
                other.id == user.id
                or other.school_id != user.school_id
                or other.user_type is not UserType.STUDENT
            ):
                continue
            name = f"{other.first_name} {other.last_name}".lower()
            mine = auth_identifier_key(user.auth_identifier)
            same_auth = mine is not None and auth_identifier_key(other.auth_identifier) == mine
            if name == me_name or other.email.rpartition("@")[0].lower() == me_local or same_auth:
                found.append((other, 1.0 if name == me_name else 0.0))
        return sorted(found, key=lambda pair: (-pair[1], pair[0].id))[:limit]


class FakeAudit:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def append(self, event: NewAuditEvent) -> None:
        details = dict(event.details)
        self._db.audit.append(
            AuditEvent(
                len(self._db.audit) + 1,
                _now(),
                event.actor_id,
                event.client,
                event.action,
                event.user_id,
                event.school_id,
                details,
            )
        )
        change = change_event(event.action, event.user_id, event.school_id, details)
        if change is not None:
            self._db.events.append(change)

    async def append_many(self, events: Sequence[NewAuditEvent]) -> None:
        for event in events:
            await self.append(event)

    async def list(
        self, school_id: str | None, user_id: str | None, before_id: int | None, limit: int
    ) -> list[AuditEvent]:
        found = [
            e
            for e in reversed(self._db.audit)
            if (school_id is None or e.school_id == school_id)
            and (user_id is None or e.user_id == user_id)
            and (before_id is None or e.id < before_id)
        ]
        return found[:limit]


class FakeIdempotency:
    RETENTION = timedelta(hours=48)

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def lock(self, client: str, actor: str, request_id: str) -> None:
        return None  # one event loop, no interleaving inside a fake unit of work

    async def find(
        self, client: str, actor: str, request_id: str, fingerprint: bytes
    ) -> StoredResponse | None:
        found = self._db.answers.get((client, actor, request_id))
        if found is None or found[1] <= _now() - self.RETENTION:
            return None
        return found[0]

    async def save(self, client: str, actor: str, request_id: str, stored: StoredResponse) -> None:
        key = (client, actor, request_id)
        if key not in self._db.answers or self._db.answers[key][1] <= _now() - self.RETENTION:
            self._db.answers[key] = (stored, _now())


class FakeEmailChanges:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def pending(self, user_id: str, *, for_update: bool = False) -> EmailChangeRecord | None:
        return next(
            (
                c
                for c in self._db.changes.values()
                if c.user_id == user_id and c.state is EmailChangeState.PENDING
            ),
            None,
        )

    async def latest(self, user_id: str) -> EmailChangeRecord | None:
        mine = [c for c in self._db.changes.values() if c.user_id == user_id]
        mine.sort(key=lambda c: (c.create_time, c.state is EmailChangeState.PENDING))
        return mine[-1] if mine else None

    async def open(self, change: NewEmailChange) -> EmailChangeRecord:
        if await self.pending(change.user_id) is not None:
            raise ValueError("a second PENDING change (email_changes_one_pending)")
        record = EmailChangeRecord(
            change.id,
            change.user_id,
            change.new_email,
            email_key(change.new_email),
            change.code_hash,
            EmailChangeState.PENDING,
            0,
            change.max_attempts,
            change.file_updates_disabled,
            change.requested_by,
            change.client,
            _now(),
            change.expire_time,
            None,
        )
        self._db.changes[change.id] = record
        return record

    def _close(self, record: EmailChangeRecord, state: EmailChangeState) -> EmailChangeRecord:
        if state is EmailChangeState.PENDING:
            raise ValueError("a change can only be closed in a final state")
        closed = replace(record, state=state, close_time=_now())
        self._db.changes[record.id] = closed
        return closed

    async def close_pending(self, user_id: str, state: EmailChangeState) -> EmailChangeRecord | None:
        if state is EmailChangeState.PENDING:
            raise ValueError("a change can only be closed in a final state")
        current = await self.pending(user_id)
        return self._close(current, state) if current else None

    async def count_attempt(self, change_id: str) -> AttemptCount | None:
        change = self._db.changes.get(change_id)
        if (
            change is None
            or change.state is not EmailChangeState.PENDING
            or change.attempts >= change.max_attempts
        ):
            return None
        self._db.changes[change_id] = replace(change, attempts=change.attempts + 1)
        return AttemptCount(change.attempts + 1, change.max_attempts)

    async def set_state(self, change_id: str, state: EmailChangeState) -> bool:
        change = self._db.changes.get(change_id)
        if state is EmailChangeState.PENDING:
            raise ValueError("a change can only be closed in a final state")
        if change is None or change.state is not EmailChangeState.PENDING:
            return False
        self._close(change, state)
        return True

    async def get(self, change_id: str) -> EmailChangeRecord | None:
        return self._db.changes.get(change_id)

    async def issue_code(self, change_id: str, code_hash: str) -> bool:
        change = self._db.changes.get(change_id)
        if change is None or change.state is not EmailChangeState.PENDING or change.expire_time <= _now():
            return False
        self._db.changes[change_id] = replace(change, code_hash=code_hash)
        return True

    async def expire_overdue(self, limit: int = 1000) -> int:
        overdue = [
            c
            for c in self._db.changes.values()
            if c.state is EmailChangeState.PENDING and c.expire_time <= _now()
        ][:limit]
        for change in overdue:
            self._close(change, EmailChangeState.EXPIRED)
        return len(overdue)


class FakeOutbox:
    ERROR_MAX = 500

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def enqueue(self, mail: OutgoingMail) -> int:
        message_id = max(self._db.outbox, default=0) + 1
        self._db.outbox[message_id] = {
            "mail": mail,
            "created_at": _now(),
            "status": "PENDING",
            "attempts": 0,
            "next_attempt_at": _now(),
            "locked_until": None,
            "last_error": None,
            "body": mail.body,
        }
        return message_id

    async def enqueue_many(self, mails: Sequence[OutgoingMail]) -> None:
        for mail in mails:
            await self.enqueue(mail)

    def _pending(self, message_id: int) -> dict[str, Any] | None:
        row = self._db.outbox.get(message_id)
        return row if row is not None and row["status"] == "PENDING" else None

    async def discard_pending(self, user_id: str, kind: str) -> int:
        rows = [
            r
            for r in self._db.outbox.values()
            if r["status"] == "PENDING" and r["mail"].user_id == user_id and r["mail"].kind == kind
        ]
        for row in rows:
            row.update(status="ABANDONED", body="", locked_until=None, last_error="discarded")
        return len(rows)

    async def claim_due(self, limit: int, lease_seconds: float) -> list[OutboxMessage]:
        now = _now()
        due = sorted(
            (
                (r["next_attempt_at"], i)
                for i, r in self._db.outbox.items()
                if r["status"] == "PENDING"
                and r["next_attempt_at"] <= now
                and (r["locked_until"] is None or r["locked_until"] <= now)
            )
        )[:limit]
        claimed = []
        for _, message_id in due:
            row = self._db.outbox[message_id]
            row["locked_until"] = now + timedelta(seconds=lease_seconds)
            mail: OutgoingMail = row["mail"]
            claimed.append(
                OutboxMessage(
                    message_id,
                    row["created_at"],
                    mail.to,
                    mail.subject,
                    row["body"],
                    mail.kind,
                    mail.school_id,
                    mail.user_id,
                    row["attempts"],
                    mail.email_change_id,
                )
            )
        return sorted(claimed, key=lambda m: m.id)

    async def mark_sent(self, message_id: int) -> None:
        if (row := self._pending(message_id)) is not None:
            row.update(status="SENT", body="", locked_until=None, last_error=None)

    async def mark_failed(
        self, message_id: int, error: str, next_attempt_at: datetime, abandon: bool
    ) -> None:
        if (row := self._pending(message_id)) is not None:
            row.update(attempts=row["attempts"] + 1, last_error=error[: self.ERROR_MAX])
            row.update(next_attempt_at=next_attempt_at, locked_until=None)
            if abandon:
                row.update(status="ABANDONED", body="")

    async def release(self, message_ids: Sequence[int]) -> None:
        for message_id in message_ids:
            if (row := self._pending(message_id)) is not None:
                row["locked_until"] = None

    async def abandon(self, message_id: int, reason: str) -> None:
        if (row := self._pending(message_id)) is not None:
            row.update(status="ABANDONED", body="", locked_until=None, last_error=reason[: self.ERROR_MAX])

    async def purge_finished(self, older_than: timedelta, limit: int = 10_000) -> int:
        old = [
            i
            for i, r in self._db.outbox.items()
            if r["status"] != "PENDING" and r["created_at"] < _now() - older_than
        ][:limit]
        for message_id in old:
            del self._db.outbox[message_id]
        return len(old)


class FakeNotifications:
    """``ports.Notifications`` in memory (one event loop: a claim is never contended)."""

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def note_pending(self, school_id: str, user_id: str) -> None:
        self._db.pending_items.setdefault(user_id, school_id)

    async def digest_schools(self, not_since: datetime, limit: int = 1000) -> list[str]:
        schools = sorted(set(self._db.pending_items.values()))
        due = [s for s in schools if s not in self._db.digests or self._db.digests[s][0] <= not_since]
        return due[:limit]

    async def claim_digest(self, school_id: str, not_since: datetime) -> bool:
        last = self._db.digests.get(school_id)
        return last is None or last[0] <= not_since

    async def take_new_pending(self, school_id: str) -> int:
        taken = [u for u, s in self._db.pending_items.items() if s == school_id]
        for user_id in taken:
            del self._db.pending_items[user_id]
        users = self._db.users
        return sum(1 for u in taken if u in users and users[u].status is UserStatus.PENDING)

    async def pending_summary(self, school_id: str) -> tuple[int, datetime | None]:
        times = [
            u.create_time
            for u in self._db.users.values()
            if u.school_id == school_id and u.status is UserStatus.PENDING
        ]
        return len(times), min(times, default=None)

    async def mark_digest(self, school_id: str, at: datetime, new_requests: int) -> None:
        self._db.digests[school_id] = (at, new_requests)

    async def oldest_pending(self) -> datetime | None:
        pending = [u.create_time for u in self._db.users.values() if u.status is UserStatus.PENDING]
        return min(pending, default=None)

    async def claim_event(self, event_id: str, event_type: str, subject: str, mails: int) -> bool:
        if event_id in self._db.notified_events:
            return False
        self._db.notified_events[event_id] = (event_type, subject, mails)
        return True

    async def purge_events(self, older_than: timedelta, limit: int = 10_000) -> int:
        return 0


class FakeRateLimits:
    KEY_MAX = 400

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    def _key(self, scope: str, subject: str) -> str:
        return f"{scope}:{subject}"[: self.KEY_MAX]

    async def hit(self, scope: str, subject: str, window: timedelta, limit: int) -> bool:
        key, since = self._key(scope, subject), _now() - window
        if sum(1 for k, at in self._db.rate_events if k == key and at > since) >= limit:
            return False
        self._db.rate_events.append((key, _now()))
        return True

    async def clear(self, scope: str, subject: str) -> None:
        key = self._key(scope, subject)
        self._db.rate_events = [(k, at) for k, at in self._db.rate_events if k != key]

    async def purge(self, older_than: timedelta, limit: int = 10_000) -> int:
        old = [e for e in self._db.rate_events if e[1] < _now() - older_than][:limit]
        for event in old:
            self._db.rate_events.remove(event)
        return len(old)


class FakeStudentFile:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def recorded_outcomes(self, job_id: str, row_numbers: Sequence[int]) -> dict[int, RowResult]:
        return {n: self._db.outcomes[(job_id, n)] for n in row_numbers if (job_id, n) in self._db.outcomes}

    async def students_named(
        self,
        school_id: str,
        username_keys: Sequence[str],
        emails: Sequence[EmailIdentity],
        *,
        lock: bool,
        auth_identifier_keys: Sequence[str] = (),
    ) -> list[StoredStudent]:
        keys, wanted, auth_keys = set(username_keys), list(emails), set(auth_identifier_keys)
        found = []
        for user in self._db.users.values():
            identity = EmailIdentity.of(user.email)
            by_name = user.school_id == school_id and user.username and username_key(user.username) in keys
            by_email = any(identity.key == e.key or identity.confusable_with(e) for e in wanted)
            by_auth = user.school_id == school_id and auth_identifier_key(user.auth_identifier) in auth_keys
            if by_name or by_email or by_auth:
                found.append(self._stored(user, identity))
        return sorted(found, key=lambda s: s.holder.id)

    def _stored(self, user: User, identity: EmailIdentity) -> StoredStudent:
        from identity_service.domain.student_file import ImportMark

        mark = self._db.marks.get(user.id)
        holder = Holder(
            user.id,
            user.user_type,
            user.school_id,
            user.status,
            user.username,
            user.email,
            user.first_name,
            user.last_name,
            user.auth_identifier,
            user.file_updates_disabled,
        )
        stored_mark = ImportMark(*mark) if mark else None
        return StoredStudent(
            holder,
            stored_mark,
            username_key(user.username) if user.username else None,
            identity,
            auth_identifier_key(user.auth_identifier),
        )

    async def record_outcomes(self, job_id: str, results: Sequence[RowResult]) -> None:
        if any((job_id, r.row_number) in self._db.outcomes for r in results):
            raise BatchConflict(f"rows of job {job_id} were recorded by another call meanwhile")
        for result in results:
            self._db.outcomes[(job_id, result.row_number)] = result
            if result.outcome.value in ("CREATED", "UPDATED", "ARCHIVED") and result.user_id:
                # as the SQL: the stored version + 1 (the batch's one update), 1 for a new student
                stored = self._db.users.get(result.user_id)
                self._db.outcome_versions[(job_id, result.row_number)] = (stored.version if stored else 0) + 1

    async def park_keys(self, user_ids: Sequence[str]) -> None:
        for user_id in user_ids:
            user = self._db.users[user_id]
            parked = f"parked-{user_id}"
            self._db.users[user_id] = replace(
                user, email=f"{parked}@parked.invalid", username=None if user.username is None else parked
            )

    async def update_students(self, job_id: str, job_time: datetime, students: Sequence[Student]) -> None:
        for student in students:
            user, holder = self._db.users[student.holder.id], student.holder
            values: dict[str, Any] = {
                "username": holder.username,
                "email": holder.email,
                "first_name": holder.first_name,
                "last_name": holder.last_name,
                "auth_identifier": holder.auth_identifier,
                "status": holder.status,
            }
            if student.changed:
                values |= {"version": user.version + 1, "update_time": _now()}
            self._db.users[user.id] = replace(user, **values)
            self._mark(student, job_id, job_time)

    async def insert_students(self, job_id: str, job_time: datetime, students: Sequence[Student]) -> None:
        for student in students:
            holder, now = student.holder, _now()
            user = User(
                holder.id,
                UserType.STUDENT,
                holder.status,
                holder.school_id,
                holder.username,
                holder.email,
                holder.first_name,
                holder.last_name,
                holder.auth_identifier,
                UserOrigin.STUDENT_FILE,
                False,
                False,
                now,
                now,
                1,
            )
            FakeUsers(self._db)._check_unique(user)
            self._db.users[user.id] = user
            self._mark(student, job_id, job_time)

    def _mark(self, student: Student, job_id: str, job_time: datetime) -> None:
        assert student.mark is not None
        self._db.marks[student.holder.id] = (job_time, job_id, student.mark.row_number)

    async def claim_sweep(self, school_id: str, job_id: str) -> bool:
        if job_id in self._db.sweeps:
            return False
        self._db.sweeps[job_id] = []
        return True

    async def swept(self, job_id: str) -> list[SweptStudent]:
        return sorted(self._db.sweeps.get(job_id, []), key=lambda s: s.user_id)

    async def record_roster_preview(self, job_id: str, named: Sequence[tuple[int, str]]) -> None:
        for row_number, user_id in named:
            self._db.previews.setdefault((job_id, row_number), user_id)

    async def clear_roster_preview(self, job_id: str) -> None:
        self._db.previews = {key: u for key, u in self._db.previews.items() if key[0] != job_id}

    async def not_named(
        self, school_id: str, job_id: str, *, lock: bool, previews: bool = False
    ) -> list[User]:
        named = {r.user_id for (job, _), r in self._db.outcomes.items() if job == job_id and r.user_id}
        if previews:
            named |= {u for (job, _), u in self._db.previews.items() if job == job_id}
        return sorted(
            (
                u
                for u in self._db.users.values()
                if u.school_id == school_id
                and u.user_type is UserType.STUDENT
                and u.status is UserStatus.ACTIVE
                and not u.file_updates_disabled
                and (u.origin is UserOrigin.STUDENT_FILE or u.id in self._db.marks)
                and u.id not in named
            ),
            key=lambda u: u.id,
        )

    async def record_swept(self, job_id: str, students: Sequence[SweptStudent]) -> None:
        self._db.sweeps.setdefault(job_id, []).extend(students)

    async def count_students(self, school_id: str) -> int:
        users = self._db.users.values()
        return sum(u.school_id == school_id and u.user_type is UserType.STUDENT for u in users)


@dataclass
class FakeMailer:
    """Keeps what it was asked to send; ``failures`` are raised, one per send, first."""

    sent: list[OutboxMessage] = field(default_factory=list)
    failures: list[SendFailed] = field(default_factory=list)

    def where(self) -> Mapping[str, object]:
        return {"smtp_host": "fake", "smtp_port": 0}

    async def send(self, message: OutboxMessage) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)


class FakeNotices:
    def __init__(self) -> None:
        self.listening = False

    async def listen(self, wake: Callable[[], None]) -> None:
        self.listening = True

    async def close(self) -> None:
        self.listening = False


def new_id() -> str:
    return str(uuid.uuid4())


class FakeJobUndos:
    """``ports.JobUndos`` in memory (the contract test holds it to the PostgreSQL one)."""

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db

    async def claim(self, job_id: str, undo_job_id: str) -> UndoClaim:
        if job_id in self._db.undos.values():
            return UndoClaim.REFUSED
        earlier = self._db.undos.get(job_id)
        if earlier is None:
            self._db.undos[job_id] = undo_job_id
            return UndoClaim.CLAIMED
        return UndoClaim.REPEATED if earlier == undo_job_id else UndoClaim.REFUSED

    async def job_changes(self, job_id: str) -> list[RecordedChange]:
        return [
            RecordedChange(n, r.outcome, r.user_id, r.changes, self._db.outcome_versions.get((j, n)))
            for (j, n), r in sorted(self._db.outcomes.items())
            if j == job_id and r.user_id and r.outcome.value in ("CREATED", "UPDATED", "ARCHIVED")
        ]

    async def job_sweep(self, job_id: str) -> list[SweptArchive]:
        swept = sorted(self._db.sweeps.get(job_id, []), key=lambda s: s.user_id)
        return [SweptArchive(s.user_id, s.user_version) for s in swept]

    async def students(self, user_ids: Sequence[str]) -> list[tuple[StoredStudent, int]]:
        files = FakeStudentFile(self._db)
        found = [self._db.users[i] for i in sorted(set(user_ids)) if i in self._db.users]
        return [(files._stored(u, EmailIdentity.of(u.email)), u.version) for u in found]

    async def delete_students(self, user_ids: Sequence[str]) -> None:
        for user_id in user_ids:
            self._db.users.pop(user_id, None)
            self._db.passwords.pop(user_id, None)
            self._db.marks.pop(user_id, None)

    async def replay(self, undo_job_id: str) -> list[RowResult]:
        return [r for (j, _), r in sorted(self._db.outcomes.items()) if j == undo_job_id]
