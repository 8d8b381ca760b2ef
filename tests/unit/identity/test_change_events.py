"""``domain.events.change_event``: the one table from audited changes to published event types."""

from __future__ import annotations

import pytest

from identity_service.domain.events import ChangeEvent, EventKind, EventType, change_event

U, S = "user-1", "school-1"


@pytest.mark.parametrize(
    ("action", "details", "expected", "kind"),
    [
        (
            "user.signed_up",
            {"status": [None, "PENDING"], "email": [None, "a@x"]},
            EventType.USER_CREATED,
            EventKind.USER,
        ),
        ("user.created_by_file", {"status": [None, "ACTIVE"]}, EventType.USER_CREATED, EventKind.USER),
        ("user.approved", {"status": ["PENDING", "ACTIVE"]}, EventType.USER_APPROVED, EventKind.USER),
        ("user.declined", {"status": ["PENDING", "DECLINED"]}, EventType.USER_DECLINED, EventKind.USER),
        (
            "user.updated_by_file",
            {"status": ["PENDING", "ACTIVE"], "username": ["a", "b"]},
            EventType.USER_APPROVED,
            EventKind.USER,
        ),
        (
            "user.updated_by_file",
            {"status": ["ARCHIVED", "ACTIVE"], "unarchived": True},
            EventType.USER_UNARCHIVED,
            EventKind.USER,
        ),
        (
            "user.archived_by_file",
            {"status": ["ACTIVE", "ARCHIVED"]},
            EventType.USER_ARCHIVED,
            EventKind.USER,
        ),
        ("user.updated_by_file", {"email": ["a@x", "b@x"]}, EventType.USER_EMAIL_CHANGED, EventKind.USER),
        (
            "user.updated_by_file",
            {"first_name": ["A", "B"], "job_id": "j"},
            EventType.USER_UPDATED,
            EventKind.USER,
        ),
        ("user.updated_by_undo", {"status": ["ACTIVE", "PENDING"]}, EventType.USER_UPDATED, EventKind.USER),
        ("user.updated_by_undo", {"status": ["ACTIVE", "ARCHIVED"]}, EventType.USER_ARCHIVED, EventKind.USER),
        (
            "user.updated_by_undo",
            {"email_address": ["b@x", "a@x"]},
            EventType.USER_EMAIL_CHANGED,
            EventKind.USER,
        ),
        (
            "user.updated_by_undo",
            {"undo_of_job_id": "j", "job_id": "u"},
            EventType.USER_UPDATED,
            EventKind.USER,
        ),
        (
            "user.file_updates_disabled",
            {"file_updates_disabled": [False, True]},
            EventType.USER_UPDATED,
            EventKind.USER,
        ),
        ("email_change.confirmed", {"email": ["a@x", "b@x"]}, EventType.USER_EMAIL_CHANGED, EventKind.USER),
        ("user.deleted", {"status": ["PENDING", None]}, EventType.USER_DELETED, EventKind.USER_DELETED),
        ("user.deleted_by_undo", {}, EventType.USER_DELETED, EventKind.USER_DELETED),
        ("user.merged", {"merged_into": "u2"}, EventType.USER_MERGED, EventKind.USER_DELETED),
        ("user.something_new", {"last_name": ["A", "B"]}, EventType.USER_UPDATED, EventKind.USER),
    ],
)
def test_user_changes_are_told_by_what_they_changed(
    action: str, details: dict[str, object], expected: EventType, kind: EventKind
) -> None:
    event = change_event(action, U, S, details)
    assert event is not None and (event.type, event.kind, event.subject) == (expected, kind, U)


def test_changed_fields_name_user_fields_only() -> None:
    event = change_event(
        "user.updated_by_file", U, S, {"first_name": ["A", "B"], "job_id": "j", "row_number": 3}
    )
    assert event == ChangeEvent(EventType.USER_UPDATED, EventKind.USER, U, ("first_name",))


def test_field_change_names_are_user_field_names() -> None:
    event = change_event("user.updated_by_undo", U, S, {"email_address": ["b", "a"], "username": ["x", "y"]})
    assert event is not None and event.changed_fields == ("username", "email")


def test_school_changes_are_about_the_school() -> None:
    event = change_event("school.updated", None, S, {"change_threshold_percent": [10, 25]})
    assert event == ChangeEvent(EventType.SCHOOL_UPDATED, EventKind.SCHOOL, S, ("change_threshold_percent",))


@pytest.mark.parametrize(
    "action", ["email_change.requested", "email_change.cancelled", "email_change.locked"]
)
def test_changes_of_nothing_a_user_shows_publish_nothing(action: str) -> None:
    assert change_event(action, U, S, {"email_change_id": "c"}) is None


def test_an_event_needs_a_subject() -> None:
    assert change_event("user.approved", None, S, {}) is None
    assert change_event("other.thing", U, S, {}) is None
