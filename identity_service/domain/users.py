"""Users and the status transitions of the pending-student queue (product rules 3, 5, 8).

A transition function checks that the user may make the step and returns the new status (or nothing,
for checks); it never changes the user — the service layer writes the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.errors import Reason, RollcallError


class UserType(StrEnum):
    STUDENT = "STUDENT"
    STAFF = "STAFF"
    EMPLOYER = "EMPLOYER"


class UserStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    DECLINED = "DECLINED"
    ARCHIVED = "ARCHIVED"  # issue 9: no sign-in, email kept, still searchable; restore -> ACTIVE


class UserOrigin(StrEnum):
    SELF_SIGNUP = "SELF_SIGNUP"
    STUDENT_FILE = "STUDENT_FILE"
    STAFF = "STAFF"


@dataclass(frozen=True)
class User:
    """A user as stored. ``email`` is in normal form (see emails.normalise_email); ``version`` is the etag."""

    id: str
    user_type: UserType
    status: UserStatus
    school_id: str | None
    username: str | None
    email: str
    first_name: str
    last_name: str
    auth_identifier: str
    origin: UserOrigin
    file_updates_disabled: bool
    email_verified: bool
    create_time: datetime
    update_time: datetime
    version: int

    @property
    def is_student(self) -> bool:
        return self.user_type is UserType.STUDENT

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


def ensure_student(user: User) -> None:
    """Refuse (FAILED_PRECONDITION) anything but a student: the queue never touches staff or employers."""
    if not user.is_student:
        raise RollcallError(
            Reason.FAILED_PRECONDITION, f"user {user.id} is a {user.user_type}, not a student"
        )


def ensure_pending(user: User) -> None:
    """Refuse (NOT_PENDING) a user who is not a PENDING student (staff and employers never are)."""
    if not user.is_student or user.status is not UserStatus.PENDING:
        raise RollcallError(
            Reason.NOT_PENDING,
            f"user {user.id} is {user.status} {user.user_type}, only a PENDING student can be decided",
        )


def approve(user: User) -> UserStatus:
    """Approve a pending student: the new status is ACTIVE."""
    ensure_pending(user)
    return UserStatus.ACTIVE


def decline(user: User) -> UserStatus:
    """Decline a pending student: the new status is DECLINED (the account and its email stay)."""
    ensure_pending(user)
    return UserStatus.DECLINED


def ensure_archivable(user_type: UserType, status: UserStatus, file_updates_disabled: bool) -> None:
    """Only an ACTIVE student whose file updates are on may be archived (FAILED_PRECONDITION): staff,
    employers, PENDING, DECLINED and already ARCHIVED students never are, nor a student staff took
    out of the files' hands."""
    if user_type is not UserType.STUDENT or status is not UserStatus.ACTIVE:
        raise RollcallError(
            Reason.FAILED_PRECONDITION, f"only an ACTIVE student can be archived, not a {status} {user_type}"
        )
    if file_updates_disabled:
        raise RollcallError(Reason.FAILED_PRECONDITION, "file updates are disabled for this student")


def archive(user_type: UserType, status: UserStatus, file_updates_disabled: bool) -> UserStatus:
    """Archive an ACTIVE student (explicit file row today; the full-roster sweep later): ARCHIVED."""
    ensure_archivable(user_type, status, file_updates_disabled)
    return UserStatus.ARCHIVED


def restore(user_type: UserType, status: UserStatus) -> UserStatus:
    """Restore an ARCHIVED student (a later file row naming it, undo later): ACTIVE."""
    if user_type is not UserType.STUDENT or status is not UserStatus.ARCHIVED:
        raise RollcallError(
            Reason.FAILED_PRECONDITION,
            f"only an ARCHIVED student can be restored, not a {status} {user_type}",
        )
    return UserStatus.ACTIVE


def sso_status_refusal(status: UserStatus) -> RollcallError | None:
    """Why a user matched by an SSO subject may not sign in (None for ACTIVE): the status as reason."""
    reasons = {
        UserStatus.ARCHIVED: Reason.USER_ARCHIVED,
        UserStatus.PENDING: Reason.USER_PENDING,
        UserStatus.DECLINED: Reason.USER_DECLINED,
    }
    reason = reasons.get(status)
    if reason is None:
        return None
    return RollcallError(reason, f"the account is {status.lower()}; it cannot sign in")


def ensure_deletable(user: User) -> None:
    """Only a PENDING or DECLINED student may be deleted by staff (NOT_PENDING otherwise)."""
    if not user.is_student or user.status not in (UserStatus.PENDING, UserStatus.DECLINED):
        raise RollcallError(
            Reason.NOT_PENDING,
            f"user {user.id} is {user.status} {user.user_type}; "
            "only a PENDING or DECLINED student can be deleted",
        )


def ensure_mergeable(pending: User, existing: User) -> None:
    """Merge needs a PENDING student and another student of the same school.

    Raises NOT_PENDING for the first, NOT_SAME_SCHOOL for the second.
    """
    ensure_pending(pending)
    if not existing.is_student or existing.id == pending.id or existing.school_id != pending.school_id:
        raise RollcallError(
            Reason.NOT_SAME_SCHOOL,
            f"user {existing.id} is not another student of the pending student's school",
        )


def ensure_email_change_allowed(user: User, disable_file_updates: bool) -> None:
    """A student the files can still update must have file updates turned off in the same request.

    Otherwise the next file row would no longer match the new address (FILE_UPDATES_MUST_BE_DISABLED).
    """
    ensure_student(user)
    if not user.file_updates_disabled and not disable_file_updates:
        raise RollcallError(
            Reason.FILE_UPDATES_MUST_BE_DISABLED,
            f"student {user.id} is updated by student files: set disable_file_updates to change the email",
        )
