"""Issue 9 in the pure domain: the archived status's transitions, status=archived rows and restores in
the decision table and in one batch, and auth identifier keys (one folding, like usernames)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from identity_service.domain.identity_keys import EmailIdentity, auth_identifier_key, username_key
from identity_service.domain.student_file import (
    Holder,
    ImportContext,
    ImportMode,
    IncomingRow,
    RowBatch,
    RowDecision,
    RowOutcome,
    RowReason,
    StoredStudent,
    ValidRow,
    decide,
    validate_row,
)
from identity_service.domain.users import (
    UserStatus,
    UserType,
    archive,
    restore,
    sso_status_refusal,
)
from shared.errors import Reason, RollcallError

SCHOOL = "school-s"
CTX = ImportContext(SCHOOL, ImportMode.ONGOING_SYNC)


def _holder(**overrides: object) -> Holder:
    values: dict[str, object] = dict(
        id="u-1",
        user_type=UserType.STUDENT,
        school_id=SCHOOL,
        status=UserStatus.ACTIVE,
        username="ann",
        email="ann@uni.edu",
        first_name="Ann",
        last_name="Lee",
        auth_identifier="A-1",
        file_updates_disabled=False,
    )
    return Holder(**(values | overrides))  # type: ignore[arg-type]


def _row(status: str = "", **overrides: object) -> ValidRow:
    values: dict[str, object] = dict(username="ann", email_address="ann@uni.edu", first_name="Ann")
    checked = validate_row(IncomingRow(3, status=status, **(values | overrides)))  # type: ignore[arg-type]
    assert isinstance(checked, ValidRow), checked
    return checked


# --- transitions -------------------------------------------------------------------------------------


def test_only_an_active_student_with_file_updates_on_is_archived_and_only_an_archived_one_restored() -> None:
    assert archive(UserType.STUDENT, UserStatus.ACTIVE, False) is UserStatus.ARCHIVED
    assert restore(UserType.STUDENT, UserStatus.ARCHIVED) is UserStatus.ACTIVE
    for user_type, status, disabled in [
        (UserType.STAFF, UserStatus.ACTIVE, False),
        (UserType.EMPLOYER, UserStatus.ACTIVE, False),
        (UserType.STUDENT, UserStatus.PENDING, False),
        (UserType.STUDENT, UserStatus.DECLINED, False),
        (UserType.STUDENT, UserStatus.ARCHIVED, False),
        (UserType.STUDENT, UserStatus.ACTIVE, True),
    ]:
        with pytest.raises(RollcallError) as refused:
            archive(user_type, status, disabled)
        assert refused.value.reason is Reason.FAILED_PRECONDITION
    with pytest.raises(RollcallError):
        restore(UserType.STUDENT, UserStatus.ACTIVE)


def test_sso_refusals_carry_the_status_as_reason() -> None:
    assert sso_status_refusal(UserStatus.ACTIVE) is None
    reasons = {
        s: sso_status_refusal(s) for s in (UserStatus.ARCHIVED, UserStatus.PENDING, UserStatus.DECLINED)
    }
    assert {s: e.reason for s, e in reasons.items() if e} == {
        UserStatus.ARCHIVED: Reason.USER_ARCHIVED,
        UserStatus.PENDING: Reason.USER_PENDING,
        UserStatus.DECLINED: Reason.USER_DECLINED,
    }


# --- the status column --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "archives"),
    [("", False), ("active", False), (" Active ", False), ("archived", True), ("ARCHIVED", True)],
)
def test_row_status_values(status: str, archives: bool) -> None:
    assert _row(status).archive is archives


@pytest.mark.parametrize("status", ["deleted", "tobedeleted", "inactive", "archived\x00", "a" * 300])
def test_any_other_status_fails_the_row_naming_status(status: str) -> None:
    decision = validate_row(IncomingRow(3, "ann", "ann@uni.edu", status=status))
    assert isinstance(decision, RowDecision)
    assert (decision.outcome, decision.reason) == (RowOutcome.FAILED, RowReason.INVALID_ROW)
    assert decision.message.startswith("status:")


# --- the decision table for archive rows and restores ---------------------------------------------------


def test_an_archive_row_archives_an_active_student_and_changes_nothing_else() -> None:
    holder = _holder()
    decision = decide(_row("archived", first_name="Annie"), holder, holder, CTX)
    assert (decision.outcome, decision.new_status, decision.changes) == (
        RowOutcome.ARCHIVED,
        UserStatus.ARCHIVED,
        {},
    )
    assert decision.user_id == "u-1" and decision.message == "archived"


@pytest.mark.parametrize(
    ("holder", "outcome", "reason"),
    [
        (_holder(status=UserStatus.ARCHIVED), RowOutcome.UNCHANGED, None),
        (_holder(status=UserStatus.PENDING), RowOutcome.SKIPPED, RowReason.NOT_ACTIVE),
        (_holder(status=UserStatus.DECLINED), RowOutcome.SKIPPED, RowReason.NOT_ACTIVE),
        (_holder(file_updates_disabled=True), RowOutcome.SKIPPED, RowReason.FILE_UPDATES_DISABLED),
    ],
)
def test_an_archive_row_never_archives_pending_declined_or_file_updates_off(
    holder: Holder, outcome: RowOutcome, reason: RowReason | None
) -> None:
    decision = decide(_row("archived"), holder, holder, CTX)
    assert (decision.outcome, decision.reason, decision.new_status) == (outcome, reason, None)


def test_an_archive_row_never_touches_staff_nor_creates_anybody() -> None:
    staff = _holder(user_type=UserType.STAFF, username=None)
    assert decide(_row("archived"), None, staff, CTX).reason is RowReason.EMAIL_TAKEN
    nobody = decide(_row("archived"), None, None, CTX)
    assert (nobody.outcome, nobody.reason, nobody.create) == (
        RowOutcome.SKIPPED,
        RowReason.USER_NOT_FOUND,
        None,
    )


def test_an_ordinary_row_naming_an_archived_student_restores_it() -> None:
    holder = _holder(status=UserStatus.ARCHIVED)
    plain = decide(_row(), holder, holder, CTX)
    assert (plain.outcome, plain.message, plain.new_status) == (
        RowOutcome.UPDATED,
        "unarchived",
        UserStatus.ACTIVE,
    )
    assert not plain.approved
    changed = decide(_row("active", first_name="Annie"), holder, holder, CTX)
    assert changed.message == "updated first_name; unarchived"


def _stored(holder: Holder) -> StoredStudent:
    return StoredStudent(
        holder,
        None,
        username_key(holder.username or ""),
        EmailIdentity.of(holder.email),
        auth_identifier_key(holder.auth_identifier),
    )


def test_a_batch_archives_then_restores_with_audit_entries_and_status_changes() -> None:
    batch = RowBatch(CTX, "job-1", datetime(2026, 12, 1, tzinfo=UTC), [_stored(_holder())])
    archived = batch.apply(_row("archived"))
    assert archived.outcome is RowOutcome.ARCHIVED
    assert [(c.field, c.old_value, c.new_value) for c in archived.changes] == [
        ("status", "ACTIVE", "ARCHIVED")
    ]
    restored = batch.apply(replace_number(_row(), 4))
    assert (restored.outcome, restored.message) == (RowOutcome.UPDATED, "unarchived")
    writes = batch.writes()
    assert [s.holder.status for s in writes.updates] == [UserStatus.ACTIVE]
    actions = [(e.action, e.details["status"]) for e in writes.audit]
    assert actions == [
        ("user.archived_by_file", ["ACTIVE", "ARCHIVED"]),
        ("user.updated_by_file", ["ARCHIVED", "ACTIVE"]),
    ]
    assert writes.audit[1].details["unarchived"] is True


def replace_number(row: ValidRow, number: int) -> ValidRow:
    from dataclasses import replace

    return replace(row, row_number=number)


def test_a_row_taking_another_students_auth_identifier_fails_by_key() -> None:
    bob = _holder(id="u-2", username="bob", email="bob@uni.edu", auth_identifier="SSO-Bob")
    batch = RowBatch(
        CTX, "job-1", datetime(2026, 12, 1, tzinfo=UTC), [_stored(_holder(auth_identifier="")), _stored(bob)]
    )
    taken = batch.apply(_row(auth_identifier="sso-BOB"))
    assert (taken.outcome, taken.reason) == (RowOutcome.FAILED, RowReason.AUTH_IDENTIFIER_TAKEN)
    created = batch.apply(
        replace_number(_row(username="cy", email_address="cy@uni.edu", auth_identifier="SSO-BOB "), 4)
    )
    assert created.reason is RowReason.AUTH_IDENTIFIER_TAKEN
    own = batch.apply(
        replace_number(_row(username="bob", email_address="bob@uni.edu", auth_identifier="SSO-Bob"), 5)
    )
    assert own.outcome is RowOutcome.UNCHANGED  # its own identifier is never "taken"
    fresh = batch.apply(replace_number(_row(auth_identifier="sso-ann"), 6))
    assert fresh.outcome is RowOutcome.UPDATED
    later = batch.apply(
        replace_number(_row(username="dee", email_address="dee@uni.edu", auth_identifier="SSO-ANN"), 7)
    )
    assert later.reason is RowReason.AUTH_IDENTIFIER_TAKEN, "a key taken earlier in the batch is taken"


# --- auth identifier keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("S12345", "s12345"),
        ("  Ann.Lee ", "ann.lee"),
        ("İNAN", "inan"),  # dotted capital I folds to i (the mark dropped), as in username keys
        ("Straße", "STRASSE"),
        ("José", "jose"),
        ("\uff53\uff11\uff12", "s12"),  # fullwidth s12
    ],
)
def test_auth_identifier_case_variants_share_one_key(one: str, other: str) -> None:
    assert auth_identifier_key(one) == auth_identifier_key(other) == username_key(other)


def test_blank_auth_identifiers_have_no_key_and_distinct_ones_differ() -> None:
    assert auth_identifier_key("") is None and auth_identifier_key("   ") is None
    assert auth_identifier_key("ann") != auth_identifier_key("anne")
    assert auth_identifier_key("\u0131nan") != auth_identifier_key("inan")  # dotless i: a lookalike
