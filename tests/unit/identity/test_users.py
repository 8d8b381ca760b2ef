"""Users and the pending-queue transitions (product rules 5 and 8)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime

import pytest

from identity_service.domain.identity_keys import username_key
from identity_service.domain.users import (
    User,
    UserOrigin,
    UserStatus,
    UserType,
    approve,
    decline,
    ensure_deletable,
    ensure_email_change_allowed,
    ensure_mergeable,
    ensure_pending,
    ensure_student,
)
from shared.errors import Reason, RollcallError

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _user(**overrides: object) -> User:
    base = User(
        id="u-1",
        user_type=UserType.STUDENT,
        status=UserStatus.PENDING,
        school_id="s-1",
        username="ann@gmail.com",
        email="ann@gmail.com",
        first_name="Ann",
        last_name="Lee",
        auth_identifier="",
        origin=UserOrigin.SELF_SIGNUP,
        file_updates_disabled=False,
        email_verified=False,
        create_time=NOW,
        update_time=NOW,
        version=1,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_enum_values_are_the_api_names() -> None:
    assert [t.value for t in UserType] == ["STUDENT", "STAFF", "EMPLOYER"]
    assert [s.value for s in UserStatus] == ["PENDING", "ACTIVE", "DECLINED", "ARCHIVED"]
    assert [o.value for o in UserOrigin] == ["SELF_SIGNUP", "STUDENT_FILE", "STAFF"]


def test_user_is_immutable() -> None:
    with pytest.raises(FrozenInstanceError):
        _user().status = UserStatus.ACTIVE  # type: ignore[misc]


def test_full_name_and_username_key() -> None:
    assert _user().full_name == "Ann Lee"
    assert _user(first_name="").full_name == "Lee"
    assert username_key(" Ann.Lee ") == "ann.lee"


def test_pending_student_can_be_approved_or_declined() -> None:
    assert approve(_user()) is UserStatus.ACTIVE
    assert decline(_user()) is UserStatus.DECLINED
    ensure_pending(_user())


@pytest.mark.parametrize("transition", [approve, decline, ensure_pending])
@pytest.mark.parametrize(
    "user",
    [
        _user(status=UserStatus.ACTIVE),
        _user(status=UserStatus.DECLINED),
        _user(user_type=UserType.STAFF, status=UserStatus.ACTIVE, origin=UserOrigin.STAFF),
        _user(user_type=UserType.EMPLOYER, status=UserStatus.PENDING, school_id=None),
    ],
)
def test_only_a_pending_student_can_be_decided(transition: object, user: User) -> None:
    with pytest.raises(RollcallError) as caught:
        transition(user)  # type: ignore[operator]
    assert caught.value.reason is Reason.NOT_PENDING
    assert user.id in caught.value.message
    assert "only a PENDING student" in caught.value.message


@pytest.mark.parametrize("status", [UserStatus.PENDING, UserStatus.DECLINED])
def test_pending_or_declined_students_are_deletable(status: UserStatus) -> None:
    ensure_deletable(_user(status=status))


@pytest.mark.parametrize(
    "user", [_user(status=UserStatus.ACTIVE), _user(user_type=UserType.STAFF, status=UserStatus.DECLINED)]
)
def test_others_are_not_deletable(user: User) -> None:
    with pytest.raises(RollcallError) as caught:
        ensure_deletable(user)
    assert caught.value.reason is Reason.NOT_PENDING
    assert "PENDING or DECLINED" in caught.value.message


def test_ensure_student() -> None:
    ensure_student(_user(status=UserStatus.ACTIVE))
    with pytest.raises(RollcallError) as caught:
        ensure_student(_user(user_type=UserType.EMPLOYER))
    assert caught.value.reason is Reason.FAILED_PRECONDITION
    assert "not a student" in caught.value.message


def test_merge_needs_a_pending_student_and_another_student_of_the_same_school() -> None:
    pending = _user()
    existing = _user(id="u-2", status=UserStatus.ACTIVE, origin=UserOrigin.STUDENT_FILE, email="al@uni.edu")
    ensure_mergeable(pending, existing)

    with pytest.raises(RollcallError) as caught:
        ensure_mergeable(existing, pending)
    assert caught.value.reason is Reason.NOT_PENDING

    for other in (
        replace(existing, school_id="s-2"),
        replace(existing, user_type=UserType.STAFF),
        replace(existing, id=pending.id),
    ):
        with pytest.raises(RollcallError) as caught:
            ensure_mergeable(pending, other)
        assert caught.value.reason is Reason.NOT_SAME_SCHOOL


def test_email_change_of_a_file_updated_student_must_disable_file_updates() -> None:
    student = _user(status=UserStatus.ACTIVE, origin=UserOrigin.STUDENT_FILE)
    with pytest.raises(RollcallError) as caught:
        ensure_email_change_allowed(student, disable_file_updates=False)
    assert caught.value.reason is Reason.FILE_UPDATES_MUST_BE_DISABLED
    ensure_email_change_allowed(student, disable_file_updates=True)
    ensure_email_change_allowed(replace(student, file_updates_disabled=True), disable_file_updates=False)
