"""Row ↔ value mapping and the translation of uniqueness violations into domain errors."""

from __future__ import annotations

from typing import Any

import asyncpg

from identity_service.domain.users import User, UserOrigin, UserStatus, UserType
from shared.errors import Reason, RollcallError

USER_COLUMNS = (
    "id, user_type, status, school_id, username, email, first_name, last_name, auth_identifier, "
    "origin, file_updates_disabled, email_verified, create_time, update_time, version"
)

_TAKEN = {
    "users_email_key": (Reason.EMAIL_TAKEN, "the email address is already used by another user"),
    "users_school_username_key": (Reason.USERNAME_TAKEN, "the username is already used at this school"),
    "users_school_auth_identifier_key": (
        Reason.AUTH_IDENTIFIER_TAKEN,
        "the auth identifier is already used by another user of this school",
    ),
    "users_email_lookalike": (
        Reason.EMAIL_CONFUSABLE,
        "the email address looks like an address another user already has",
    ),
    "users_email_lookalike_mixed": (
        Reason.EMAIL_CONFUSABLE,
        "the email address looks like an address another user already has",
    ),
}


# stored text → member by a dict lookup (calling the enum class costs ~1 µs a column); an unknown
# text still goes through the class, which refuses it
_USER_TYPES = {member.value: member for member in UserType}
_STATUSES = {member.value: member for member in UserStatus}
_ORIGINS = {member.value: member for member in UserOrigin}


def to_user(row: Any) -> User:
    school_id = row["school_id"]
    return User(
        id=str(row["id"]),
        user_type=_USER_TYPES.get(row["user_type"]) or UserType(row["user_type"]),
        status=_STATUSES.get(row["status"]) or UserStatus(row["status"]),
        school_id=str(school_id) if school_id is not None else None,
        username=row["username"],
        email=row["email"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        auth_identifier=row["auth_identifier"],
        origin=_ORIGINS.get(row["origin"]) or UserOrigin(row["origin"]),
        file_updates_disabled=row["file_updates_disabled"],
        email_verified=row["email_verified"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        version=row["version"],
    )


def taken(error: asyncpg.IntegrityConstraintViolationError) -> Exception:
    """EMAIL_TAKEN / USERNAME_TAKEN / EMAIL_CONFUSABLE for our unique indexes and the lookalike
    exclusion constraint; any other violation is returned as is."""
    known = _TAKEN.get(getattr(error, "constraint_name", None) or "")
    if known is None:
        return error
    reason, message = known
    return RollcallError(reason, message)
