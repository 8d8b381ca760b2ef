"""Email changes (product rule 8) as values: the states of a change, what is stored, what is shown.

A change is opened by staff (or a merge) without any code: the courier issues the code when it sends
the code mail (``service/code_mail.py``), so a plain code never exists outside the courier's
memory and the mail. Only ``codes.hash_code`` of the latest issued code is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class EmailChangeState(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    LOCKED = "LOCKED"


@dataclass(frozen=True)
class NewEmailChange:
    """What the request use-case inserts. ``code_hash`` is None: the courier issues the code."""

    id: str
    user_id: str
    new_email: str
    expire_time: datetime
    code_hash: str | None = None
    max_attempts: int = 5
    file_updates_disabled: bool = False
    requested_by: str | None = None
    client: str = ""


@dataclass(frozen=True)
class EmailChangeRecord:
    """An email change as stored. ``code_hash`` is None until the courier has issued a code."""

    id: str
    user_id: str
    new_email: str
    new_email_key: str
    code_hash: str | None
    state: EmailChangeState
    attempts: int
    max_attempts: int
    file_updates_disabled: bool
    requested_by: str | None
    client: str
    create_time: datetime
    expire_time: datetime
    close_time: datetime | None

    def public(self) -> EmailChange:
        """What callers see (never the code hash nor the attempt count)."""
        return EmailChange(
            id=self.id,
            user_id=self.user_id,
            new_email=self.new_email,
            state=self.state,
            expire_time=self.expire_time,
            file_updates_disabled=self.file_updates_disabled,
        )


@dataclass(frozen=True)
class EmailChange:
    """An email change as the API shows it. ``file_updates_disabled`` is true when student files
    no longer update the student once the change was opened (already off, or turned off by it)."""

    id: str
    user_id: str
    new_email: str
    state: EmailChangeState
    expire_time: datetime
    file_updates_disabled: bool


@dataclass(frozen=True)
class AttemptCount:
    """A counted confirmation try: this was try number ``attempts`` of at most ``max_attempts``."""

    attempts: int
    max_attempts: int

    @property
    def is_last(self) -> bool:
        """True when no further try is left after this one (a wrong code now locks the change)."""
        return self.attempts >= self.max_attempts
