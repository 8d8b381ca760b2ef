"""Which change event an audited change is (api.md "Events"; product.md "What others are told").

Every committed change to a user or a school is audited in its transaction; the same append writes
its change event to the outbox (``Audit`` port), so no change can be published without being
committed or committed without being published. ``change_event`` is the one table from audit actions
to event types: what a change was is read from what it changed (a file row that moves a student
PENDING → ACTIVE is an approval; → ARCHIVED an archive; ARCHIVED → ACTIVE a restore; a new email an
email change), so every way of making a change — staff, the web app, files, undo — says it the same
way. Audit actions that change no user field (an email change requested, cancelled or locked; a sign
in) publish nothing. An unknown ``user.*`` action publishes ``user.updated``: no change goes unsaid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from identity_service.domain.student_file import STUDENT_ROW_FIELDS

USER_FIELDS = (
    "user_type",
    "status",
    "school_id",
    "username",
    "email",
    "first_name",
    "last_name",
    "auth_identifier",
    "origin",
    "file_updates_disabled",
    "email_verified",
)
"""The User fields an event's ``changed_fields`` may name (proto ``rollcall.identity.v1.User``)."""


class EventKind(StrEnum):
    """What an event's payload is (proto ``Event.payload``)."""

    USER = "user"  # UserChanged: the user after the change
    USER_DELETED = "user_deleted"  # UserDeleted: the user no longer exists
    SCHOOL = "school"  # SchoolChanged: the school after the change


class EventType(StrEnum):
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_APPROVED = "user.approved"
    USER_DECLINED = "user.declined"
    USER_DELETED = "user.deleted"
    USER_ARCHIVED = "user.archived"
    USER_UNARCHIVED = "user.unarchived"
    USER_EMAIL_CHANGED = "user.email_changed"
    USER_MERGED = "user.merged"
    SCHOOL_CREATED = "school.created"
    SCHOOL_UPDATED = "school.updated"


@dataclass(frozen=True)
class ChangeEvent:
    """The event one audited change publishes: its type, payload kind, subject and changed fields."""

    type: EventType
    kind: EventKind
    subject: str
    changed_fields: tuple[str, ...] = ()


_FIXED: Mapping[str, tuple[EventType, EventKind]] = {
    "user.created": (EventType.USER_CREATED, EventKind.USER),
    "user.signed_up": (EventType.USER_CREATED, EventKind.USER),
    "user.created_by_file": (EventType.USER_CREATED, EventKind.USER),
    "user.approved": (EventType.USER_APPROVED, EventKind.USER),
    "user.declined": (EventType.USER_DECLINED, EventKind.USER),
    "user.deleted": (EventType.USER_DELETED, EventKind.USER_DELETED),
    "user.deleted_by_undo": (EventType.USER_DELETED, EventKind.USER_DELETED),
    "user.merged": (EventType.USER_MERGED, EventKind.USER_DELETED),
    "user.archived_by_file": (EventType.USER_ARCHIVED, EventKind.USER),
    "email_change.confirmed": (EventType.USER_EMAIL_CHANGED, EventKind.USER),
    "school.created": (EventType.SCHOOL_CREATED, EventKind.SCHOOL),
    "school.updated": (EventType.SCHOOL_UPDATED, EventKind.SCHOOL),
}
_USER_FIELD_OF = {row_name: user_name for user_name, row_name in STUDENT_ROW_FIELDS.items()}
"""A ``FieldChange`` name (``email_address``: what files and undos audit) → its User field (``email``)."""
_SILENT = frozenset({"email_change.requested", "email_change.cancelled", "email_change.locked"})


def change_event(
    action: str, user_id: str | None, school_id: str | None, details: Mapping[str, Any]
) -> ChangeEvent | None:
    """The event of one audited change (None: the change publishes nothing)."""
    if action in _SILENT:
        return None
    details = {_USER_FIELD_OF.get(name, name): value for name, value in details.items()}
    fields = tuple(name for name in USER_FIELDS if name in details)
    fixed = _FIXED.get(action)
    if fixed is not None:
        event_type, kind = fixed
    elif action.startswith("user."):
        event_type, kind = _by_what_changed(details), EventKind.USER
    else:
        return None
    subject = school_id if kind is EventKind.SCHOOL else user_id
    if not subject:
        return None
    if kind is EventKind.SCHOOL:
        fields = tuple(name for name in details if isinstance(details.get(name), list))
    return ChangeEvent(event_type, kind, subject, fields)


def _by_what_changed(details: Mapping[str, Any]) -> EventType:
    status = details.get("status")
    if isinstance(status, list) and len(status) == 2:
        before, after = status
        if after == "ARCHIVED":
            return EventType.USER_ARCHIVED
        if before == "ARCHIVED":
            return EventType.USER_UNARCHIVED
        if before == "PENDING" and after == "ACTIVE":
            return EventType.USER_APPROVED
    if "email" in details:
        return EventType.USER_EMAIL_CHANGED
    return EventType.USER_UPDATED
