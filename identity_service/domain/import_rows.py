"""The values the import decision table works on: rows in, what the database knows, decisions out.

The rules themselves are in import_rules.py; this module only names things.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from identity_service.domain.identity_keys import EmailIdentity, username_key
from identity_service.domain.users import User, UserOrigin, UserStatus, UserType

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


class RowReason(StrEnum):
    INVALID_ROW = "INVALID_ROW"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    IDENTITY_CONFLICT = "IDENTITY_CONFLICT"
    FILE_UPDATES_DISABLED = "FILE_UPDATES_DISABLED"
    SENSITIVE_FIELDS_REQUIRED = "SENSITIVE_FIELDS_REQUIRED"
    SUPERSEDED = "SUPERSEDED"  # a higher-numbered row of the same job named the same student
    EMAIL_CONFUSABLE = "EMAIL_CONFUSABLE"  # the address looks like another stored address


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

    @classmethod
    def from_user(cls, user: User) -> Holder:
        return cls(
            id=user.id,
            user_type=user.user_type,
            school_id=user.school_id,
            status=user.status,
            username=user.username,
            email=user.email,
            first_name=user.first_name,
            last_name=user.last_name,
            auth_identifier=user.auth_identifier,
            file_updates_disabled=user.file_updates_disabled,
        )

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
