"""The student-file decision table (product.md, "Import rules"), row by row and in combination."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from identity_service.domain.student_file import (
    SENSITIVE_FIELDS_MESSAGE,
    Holder,
    ImportContext,
    ImportMode,
    IncomingRow,
    NewStudent,
    RowDecision,
    RowOutcome,
    RowReason,
    ValidRow,
    decide,
    validate_row,
)
from identity_service.domain.users import UserOrigin, UserStatus, UserType

SCHOOL = "school-s"
OTHER_SCHOOL = "school-t"


def _holder(user_id: str = "u-1", **overrides: object) -> Holder:
    values: dict[str, object] = {
        "id": user_id,
        "user_type": UserType.STUDENT,
        "school_id": SCHOOL,
        "status": UserStatus.ACTIVE,
        "username": "ann",
        "email": "ann@uni.edu",
        "first_name": "Ann",
        "last_name": "Lee",
        "auth_identifier": "A-1",
        "file_updates_disabled": False,
    }
    values.update(overrides)
    return Holder(**values)  # type: ignore[arg-type]


def _row(**overrides: object) -> ValidRow:
    values: dict[str, object] = {
        "username": "ann",
        "email_address": "ann@uni.edu",
        "first_name": "Ann",
        "last_name": "Lee",
        "auth_identifier": "A-1",
    }
    values.update(overrides)
    checked = validate_row(IncomingRow(row_number=7, **values))  # type: ignore[arg-type]
    assert isinstance(checked, ValidRow), checked
    return checked


def _ctx(mode: ImportMode = ImportMode.MANUAL_FILE, sensitive: bool = False) -> ImportContext:
    return ImportContext(SCHOOL, mode, sensitive)


def _assert_consistent(decision: RowDecision) -> None:
    """What every decision must satisfy, whatever the row."""
    assert decision.row_number == 7
    if decision.outcome in (RowOutcome.FAILED, RowOutcome.SKIPPED):
        assert decision.reason is not None
        assert (decision.changes, decision.create, decision.new_status, decision.approved) == (
            {},
            None,
            None,
            False,
        )
    else:
        assert decision.reason is None
    if decision.outcome is RowOutcome.CREATED:
        assert decision.create is not None and decision.user_id is None
    else:
        assert decision.create is None
    if decision.outcome is RowOutcome.UPDATED:
        assert decision.changes or decision.approved or decision.new_status is not None
    if decision.outcome is RowOutcome.UNCHANGED:
        assert not decision.changes and not decision.approved
    unarchived = "unarchived" in decision.message
    assert decision.approved == (decision.new_status is UserStatus.ACTIVE and not unarchived)
    if unarchived:  # an ordinary row naming an archived student restores it
        assert decision.outcome is RowOutcome.UPDATED and decision.new_status is UserStatus.ACTIVE


# --- the whole table: scenario x mode x sensitive setting x status x file updates x row differs ---------

SCENARIOS = ["neither", "u_only", "e_only", "same", "different", "e_staff", "e_employer", "e_other_school"]


def _holders(scenario: str, status: UserStatus, disabled: bool) -> tuple[Holder | None, Holder | None]:
    student = _holder("u-1", status=status, file_updates_disabled=disabled)
    other = _holder("u-2", username="bob", email="ann@uni.edu", status=status, file_updates_disabled=disabled)
    if scenario == "neither":
        return None, None
    if scenario == "u_only":
        return replace(student, email="ann.lee@gmail.com"), None
    if scenario == "e_only":
        return None, replace(student, username="ann@uni.edu")
    if scenario == "same":
        return student, student
    if scenario == "different":
        return replace(student, email="ann.lee@gmail.com"), other
    staff = replace(other, user_type=UserType.STAFF, username=None)
    if scenario == "e_staff":
        return student, staff
    if scenario == "e_employer":
        return None, replace(staff, user_type=UserType.EMPLOYER, school_id=None)
    return None, replace(other, school_id=OTHER_SCHOOL)  # e_other_school


def _expected(
    scenario: str, may_sensitive: bool, status: UserStatus, disabled: bool, differs: bool
) -> tuple[RowOutcome, RowReason | None, bool]:
    """The table, written out: (outcome, reason, approved)."""
    if scenario in ("e_staff", "e_employer", "e_other_school"):
        return RowOutcome.FAILED, RowReason.EMAIL_TAKEN, False  # row 2
    if scenario == "different":
        return RowOutcome.FAILED, RowReason.IDENTITY_CONFLICT, False  # row 3
    if scenario == "neither":
        return RowOutcome.CREATED, None, False  # row 4
    if disabled:
        return RowOutcome.SKIPPED, RowReason.FILE_UPDATES_DISABLED, False  # row 5
    approved = status is UserStatus.PENDING
    if scenario == "same":  # row 6
        changed = differs or approved or status is UserStatus.ARCHIVED  # restored
        return (RowOutcome.UPDATED if changed else RowOutcome.UNCHANGED), None, approved
    if may_sensitive:  # row 7
        return RowOutcome.UPDATED, None, approved
    return RowOutcome.FAILED, RowReason.SENSITIVE_FIELDS_REQUIRED, False  # row 8


@pytest.mark.parametrize(
    ("scenario", "mode", "sensitive", "status", "disabled", "differs"),
    list(
        itertools.product(
            SCENARIOS, list(ImportMode), [False, True], list(UserStatus), [False, True], [False, True]
        )
    ),
)
def test_decision_table(
    scenario: str, mode: ImportMode, sensitive: bool, status: UserStatus, disabled: bool, differs: bool
) -> None:
    by_username, by_email = _holders(scenario, status, disabled)
    row = _row(first_name="Annie") if differs else _row()
    may_sensitive = mode is ImportMode.MANUAL_FILE and sensitive

    decision = decide(row, by_username, by_email, _ctx(mode, sensitive))

    _assert_consistent(decision)
    expected = _expected(scenario, may_sensitive, status, disabled, differs)
    assert (decision.outcome, decision.reason, decision.approved) == expected
    if decision.outcome in (RowOutcome.UPDATED, RowOutcome.UNCHANGED):
        assert decision.user_id == "u-1"
        assert ("first_name" in decision.changes) == differs
        if status is UserStatus.DECLINED:
            assert decision.new_status is None  # a declined student stays declined
    if decision.outcome is RowOutcome.SKIPPED:
        assert decision.user_id == "u-1"
    if decision.reason is RowReason.SENSITIVE_FIELDS_REQUIRED:
        assert decision.message == SENSITIVE_FIELDS_MESSAGE


# --- row 4: create ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(ImportMode))
def test_new_student_is_active_from_the_student_file(mode: ImportMode) -> None:
    row = _row(username=" Ann.Lee ", email_address=" Ann.Lee@UNI.edu ", auth_identifier="")
    decision = decide(row, None, None, _ctx(mode))
    assert decision.outcome is RowOutcome.CREATED
    assert decision.create == NewStudent(
        school_id=SCHOOL,
        username="Ann.Lee",
        email="Ann.Lee@uni.edu",
        first_name="Ann",
        last_name="Lee",
        auth_identifier="",
        status=UserStatus.ACTIVE,
        origin=UserOrigin.STUDENT_FILE,
    )
    assert not decision.approved


# --- row 6: username and email name the same student ---------------------------------------------------


def test_letter_case_of_username_and_email_is_not_a_change() -> None:
    holder = _holder(username="ann", email="ann@uni.edu")
    decision = decide(_row(username="ANN", email_address="ANN@UNI.EDU"), holder, holder, _ctx())
    assert decision.outcome is RowOutcome.UNCHANGED
    assert decision.message == "no changes"


def test_blank_ordinary_fields_and_auth_identifier_keep_stored_values() -> None:
    holder = _holder()
    row = _row(first_name="  ", last_name="", auth_identifier="")
    decision = decide(row, holder, holder, _ctx(ImportMode.ONGOING_SYNC))
    assert decision.outcome is RowOutcome.UNCHANGED


def test_only_changed_fields_are_listed() -> None:
    holder = _holder()
    decision = decide(_row(last_name="Lee-Park"), holder, holder, _ctx(ImportMode.ONGOING_SYNC))
    assert decision.outcome is RowOutcome.UPDATED
    assert decision.changes == {"last_name": "Lee-Park"}
    assert decision.message == "updated last_name"


def test_pending_student_matched_by_sync_is_approved_without_field_changes() -> None:
    holder = _holder(status=UserStatus.PENDING)
    decision = decide(_row(), holder, holder, _ctx(ImportMode.ONGOING_SYNC))
    assert decision.outcome is RowOutcome.UPDATED
    assert decision.approved and decision.new_status is UserStatus.ACTIVE
    assert decision.changes == {}
    assert decision.message == "approved"


def test_self_signup_student_is_matched_when_the_school_sends_the_email_as_username() -> None:
    holder = _holder(username="ann.lee@gmail.com", email="ann.lee@gmail.com", status=UserStatus.PENDING)
    row = _row(username="ann.lee@gmail.com", email_address="Ann.Lee@gmail.com", first_name="Annie")
    decision = decide(row, holder, holder, _ctx(ImportMode.ONGOING_SYNC))
    assert decision.outcome is RowOutcome.UPDATED and decision.approved
    assert decision.changes == {"first_name": "Annie"}
    assert decision.message == "updated first_name; approved"


def test_declined_student_stays_declined_but_fields_update() -> None:
    holder = _holder(status=UserStatus.DECLINED)
    decision = decide(_row(first_name="Annie"), holder, holder, _ctx(ImportMode.MANUAL_FILE, True))
    assert decision.outcome is RowOutcome.UPDATED
    assert decision.new_status is None and not decision.approved
    assert decision.changes == {"first_name": "Annie"}


# --- row 9: auth identifier on a matched student -------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "sensitive"),
    [(ImportMode.ONGOING_SYNC, False), (ImportMode.ONGOING_SYNC, True), (ImportMode.MANUAL_FILE, False)],
)
def test_changed_auth_identifier_needs_the_sensitive_setting(mode: ImportMode, sensitive: bool) -> None:
    holder = _holder(auth_identifier="A-1", status=UserStatus.PENDING)
    decision = decide(_row(auth_identifier="B-2"), holder, holder, _ctx(mode, sensitive))
    assert (decision.outcome, decision.reason) == (RowOutcome.FAILED, RowReason.SENSITIVE_FIELDS_REQUIRED)
    assert decision.message.startswith(SENSITIVE_FIELDS_MESSAGE)
    assert "auth_identifier" in decision.message
    assert not decision.approved


def test_changed_auth_identifier_with_the_sensitive_setting_is_updated() -> None:
    holder = _holder(auth_identifier="A-1")
    decision = decide(_row(auth_identifier="B-2"), holder, holder, _ctx(ImportMode.MANUAL_FILE, True))
    assert decision.outcome is RowOutcome.UPDATED
    assert decision.changes == {"auth_identifier": "B-2"}


@pytest.mark.parametrize("mode", list(ImportMode))
def test_blank_stored_auth_identifier_is_filled_by_any_row(mode: ImportMode) -> None:
    holder = _holder(auth_identifier="")
    decision = decide(_row(auth_identifier="B-2"), holder, holder, _ctx(mode))
    assert decision.outcome is RowOutcome.UPDATED
    assert decision.changes == {"auth_identifier": "B-2"}


def test_auth_identifier_comparison_is_exact() -> None:
    holder = _holder(auth_identifier="abc")
    decision = decide(_row(auth_identifier="ABC"), holder, holder, _ctx(ImportMode.ONGOING_SYNC))
    assert decision.reason is RowReason.SENSITIVE_FIELDS_REQUIRED


# --- rows 7 and 8: only one of U and E exists ---------------------------------------------------------


def test_manual_file_with_setting_moves_a_self_signup_to_the_school_username() -> None:
    """The re-drive case: E is the self-registered student (username = email), the row renames them."""
    holder = _holder(
        username="ann.lee@gmail.com", email="ann.lee@gmail.com", auth_identifier="", status=UserStatus.PENDING
    )
    row = _row(username="alee42", email_address="ann.lee@gmail.com", auth_identifier="S-42")
    decision = decide(row, None, holder, _ctx(ImportMode.MANUAL_FILE, True))
    assert decision.outcome is RowOutcome.UPDATED
    assert decision.changes == {"username": "alee42", "auth_identifier": "S-42"}
    assert decision.approved and decision.new_status is UserStatus.ACTIVE
    assert decision.user_id == holder.id


def test_manual_file_with_setting_changes_the_email_of_the_username_holder() -> None:
    holder = _holder(email="old@uni.edu")
    row = _row(email_address="Ann.New@Uni.EDU", auth_identifier="B-2", last_name="Park")
    decision = decide(row, holder, None, _ctx(ImportMode.MANUAL_FILE, True))
    assert decision.outcome is RowOutcome.UPDATED
    assert decision.changes == {"last_name": "Park", "email": "Ann.New@uni.edu", "auth_identifier": "B-2"}
    assert not decision.approved


def test_username_letter_case_is_not_a_change_when_the_email_moves() -> None:
    holder = _holder(username="Ann", email="old@uni.edu")
    decision = decide(_row(username="ann"), holder, None, _ctx(ImportMode.MANUAL_FILE, True))
    assert decision.changes == {"email": "ann@uni.edu"}


@pytest.mark.parametrize(
    ("mode", "sensitive"),
    [(ImportMode.ONGOING_SYNC, False), (ImportMode.ONGOING_SYNC, True), (ImportMode.MANUAL_FILE, False)],
)
@pytest.mark.parametrize("which", ["username", "email"])
def test_sensitive_change_without_the_setting_fails_with_the_exact_message(
    mode: ImportMode, sensitive: bool, which: str
) -> None:
    holder = _holder(status=UserStatus.PENDING)
    by_username, by_email = (holder, None) if which == "username" else (None, holder)
    row = _row(email_address="new@uni.edu") if which == "username" else _row(username="new")
    decision = decide(row, by_username, by_email, _ctx(mode, sensitive))
    assert (decision.outcome, decision.reason) == (RowOutcome.FAILED, RowReason.SENSITIVE_FIELDS_REQUIRED)
    assert decision.message == "attempting to update sensitive fields without sensitive fields setting"
    assert not decision.approved


# --- precedence -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("holder_type", [UserType.STAFF, UserType.EMPLOYER])
def test_staff_or_employer_holding_the_email_is_email_taken(holder_type: UserType) -> None:
    staff = _holder("staff-1", user_type=holder_type, username=None, auth_identifier="")
    decision = decide(_row(), None, staff, _ctx(ImportMode.MANUAL_FILE, True))
    assert (decision.outcome, decision.reason) == (RowOutcome.FAILED, RowReason.EMAIL_TAKEN)
    assert decision.user_id is None
    assert "ann@uni.edu" not in decision.message  # says nothing about who holds it


def test_email_taken_beats_identity_conflict() -> None:
    student = _holder("u-1", email="other@uni.edu")
    staff = _holder("staff-1", user_type=UserType.STAFF)
    assert decide(_row(), student, staff, _ctx()).reason is RowReason.EMAIL_TAKEN


def test_email_taken_beats_file_updates_disabled() -> None:
    elsewhere = _holder("u-9", school_id=OTHER_SCHOOL, file_updates_disabled=True)
    assert decide(_row(), None, elsewhere, _ctx()).reason is RowReason.EMAIL_TAKEN


def test_identity_conflict_beats_file_updates_disabled() -> None:
    by_username = _holder("u-1", email="other@uni.edu", file_updates_disabled=True)
    by_email = _holder("u-2", username="bob", file_updates_disabled=True)
    decision = decide(_row(), by_username, by_email, _ctx())
    assert (decision.outcome, decision.reason) == (RowOutcome.FAILED, RowReason.IDENTITY_CONFLICT)


@pytest.mark.parametrize("which", ["username", "email"])
def test_file_updates_disabled_beats_sensitive_fields_required(which: str) -> None:
    holder = _holder(file_updates_disabled=True)
    by_username, by_email = (holder, None) if which == "username" else (None, holder)
    decision = decide(_row(username="new", email_address="new@uni.edu"), by_username, by_email, _ctx())
    assert (decision.outcome, decision.reason) == (RowOutcome.SKIPPED, RowReason.FILE_UPDATES_DISABLED)
    assert decision.user_id == holder.id


def test_file_updates_disabled_beats_auth_identifier_change() -> None:
    holder = _holder(file_updates_disabled=True, status=UserStatus.PENDING)
    decision = decide(_row(auth_identifier="B-2"), holder, holder, _ctx(ImportMode.ONGOING_SYNC))
    assert decision.outcome is RowOutcome.SKIPPED
    assert not decision.approved  # a skipped pending student is not approved


def test_username_holder_who_is_not_a_student_of_the_school_is_never_touched() -> None:
    elsewhere = _holder("u-9", school_id=OTHER_SCHOOL, email="x@uni.edu")
    decision = decide(_row(), elsewhere, None, _ctx(ImportMode.MANUAL_FILE, True))
    assert (decision.outcome, decision.reason) == (RowOutcome.FAILED, RowReason.IDENTITY_CONFLICT)


def test_ongoing_sync_ignores_the_sensitive_setting() -> None:
    assert not ImportContext(SCHOOL, ImportMode.ONGOING_SYNC, True).may_update_sensitive_fields
    assert ImportContext(SCHOOL, ImportMode.MANUAL_FILE, True).may_update_sensitive_fields
    assert not ImportContext(SCHOOL, ImportMode.MANUAL_FILE, False).may_update_sensitive_fields


def test_lookup_keys_are_case_insensitive() -> None:
    row = _row(username="AnnL", email_address="Ann@UNI.edu")
    assert (row.username_key, row.email_key) == ("annl", "ann@uni.edu")


def test_email_letter_case_is_not_a_change_when_the_username_moves() -> None:
    holder = _holder(username="ann.lee@gmail.com", email="Ann.Lee@gmail.com")
    row = _row(username="alee42", email_address="ann.lee@GMAIL.com")
    decision = decide(row, None, holder, _ctx(ImportMode.MANUAL_FILE, True))
    assert decision.changes == {"username": "alee42"}
