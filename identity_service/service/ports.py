"""What the service layer needs from persistence: a unit of work holding its repositories.

The PostgreSQL adapters implement these; unit tests may use in-memory fakes. A repository raises
``RollcallError(EMAIL_TAKEN / USERNAME_TAKEN)`` when a write would break a uniqueness rule: the
database decides, so concurrent writers cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, Protocol

from identity_service.domain.email_changes import (
    AttemptCount,
    EmailChangeRecord,
    EmailChangeState,
    NewEmailChange,
)
from identity_service.domain.mail import OutgoingMail
from identity_service.domain.users import User, UserStatus, UserType
from identity_service.service.models import AuditEvent, NewAuditEvent, School, StoredResponse


class Schools(Protocol):
    async def add(self, school: School) -> School: ...

    async def get(self, school_id: str) -> School | None: ...


class Users(Protocol):
    async def add(self, user: User, password_hash: str | None) -> User:
        """Insert; ``create_time``/``update_time``/``version`` of the argument are ignored."""
        ...

    async def get(self, user_id: str, *, for_update: bool = False) -> User | None: ...

    async def by_email(self, email: str) -> User | None:
        """The user holding ``email`` (compared by ``identity_keys.email_key``)."""
        ...

    async def lookalike_of(self, email: str, *, other_than: str | None = None) -> User | None:
        """A user (not ``other_than``) whose address looks like ``email`` without being it
        (``EmailIdentity.confusable_with``)."""
        ...

    async def set_status(self, user_id: str, status: UserStatus) -> User: ...

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

    async def search(
        self,
        school_id: str,
        text: str,
        user_types: Sequence[UserType],
        statuses: Sequence[UserStatus],
        after: tuple[Any, ...] | None,
        limit: int,
    ) -> list[User]:
        """Users of the school whose names, email or username contain ``text`` (any case), by
        (last name, first name, id); ``after`` is the ``search_cursor`` of the previous page's last user."""
        ...

    async def pending(self, school_id: str, after: tuple[Any, ...] | None, limit: int) -> list[User]:
        """PENDING students of the school, oldest first; ``after`` is (create_time, id) of the last one."""
        ...

    async def duplicate_candidates(self, user: User, limit: int) -> list[tuple[User, float]]:
        """Other students of ``user``'s school who may be the same person, with the trigram similarity
        of their names to ``user``'s (0..1)."""
        ...


class Audit(Protocol):
    async def append(self, event: NewAuditEvent) -> None: ...

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


class Outbox(Protocol):
    async def enqueue(self, mail: OutgoingMail) -> int:
        """Queue ``mail`` in this transaction; the courier sends it after commit."""
        ...

    async def discard_pending(self, user_id: str, kind: str) -> int:
        """Abandon the user's unsent mail of ``kind``."""
        ...


class RateLimits(Protocol):
    async def hit(self, scope: str, subject: str, window: timedelta, limit: int) -> bool:
        """Record one event if fewer than ``limit`` happened within ``window``; False when over."""
        ...

    async def clear(self, scope: str, subject: str) -> None: ...


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


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work; ``read_only`` ones run their queries without a transaction (one round trip
    each, for use cases that only read)."""

    def __call__(self, *, read_only: bool = False) -> AbstractAsyncContextManager[UnitOfWork]: ...


def search_cursor(user: User) -> tuple[Any, ...]:
    """Where a search page ends (the repository compares the names case-insensitively, as it sorts)."""
    return (user.last_name, user.first_name, user.id)


def pending_cursor(user: User) -> tuple[Any, ...]:
    """Where a pending-queue page ends."""
    return (user.create_time.isoformat(), user.id)
