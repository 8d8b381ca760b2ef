"""Field-level changes (issue 9) in the pure domain: what each row result says it changed, with the
User field names mapped to StudentRow's in one place."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from identity_service.domain.identity_keys import EmailIdentity, username_key
from identity_service.domain.student_file import (
    STUDENT_ROW_FIELDS,
    FieldChange,
    Holder,
    ImportContext,
    ImportMode,
    NewStudent,
    RowBatch,
    RowOutcome,
    StoredStudent,
    ValidRow,
    created_changes,
    updated_changes,
)
from identity_service.domain.users import UserStatus, UserType
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb

SCHOOL = "11111111-1111-1111-1111-111111111111"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
SYNC = ImportContext(SCHOOL, ImportMode.ONGOING_SYNC)
SENSITIVE = ImportContext(SCHOOL, ImportMode.MANUAL_FILE, sensitive_fields_update=True)


def holder(
    user_id: str = "u1",
    username: str = "ann",
    email: str = "ann@uni.example",
    *,
    status: UserStatus = UserStatus.ACTIVE,
    first: str = "Ann",
    last: str = "Lee",
    auth: str = "",
    disabled: bool = False,
) -> Holder:
    return Holder(user_id, UserType.STUDENT, SCHOOL, status, username, email, first, last, auth, disabled)


def stored(h: Holder) -> StoredStudent:
    return StoredStudent(h, None, username_key(h.username or ""), EmailIdentity.of(h.email))


def batch(*holders: Holder, ctx: ImportContext = SYNC) -> RowBatch:
    ids = (f"new-{n}" for n in itertools.count(1))
    return RowBatch(ctx, "job", T0, [stored(h) for h in holders], new_id=lambda: next(ids))


def row(number: int, username: str, email: str, first: str = "", last: str = "", auth: str = "") -> ValidRow:
    return ValidRow(number, username, email, first, last, auth)


def test_the_mapping_names_every_student_row_field_plus_status() -> None:
    row_fields = {f.name for f in rows_pb.StudentRow.DESCRIPTOR.fields} - {"row_number", "extra"}
    assert set(STUDENT_ROW_FIELDS.values()) == row_fields | {"status"}
    assert STUDENT_ROW_FIELDS["email"] == "email_address"
    assert all(hasattr(holder(), name) for name in STUDENT_ROW_FIELDS)


def test_a_created_row_lists_every_field_it_set_with_empty_old_values() -> None:
    [result] = [batch().apply(row(1, "bo", "bo@uni.example", "Bo", "", "sis-7"))]
    assert result.outcome is RowOutcome.CREATED
    assert result.changes == (
        FieldChange("username", "", "bo"),
        FieldChange("email_address", "", "bo@uni.example"),
        FieldChange("first_name", "", "Bo"),
        FieldChange("auth_identifier", "", "sis-7"),
        FieldChange("status", "", "ACTIVE"),
    )
    new = NewStudent(SCHOOL, "bo", "bo@uni.example", "Bo", "", "sis-7")
    assert created_changes(new) == result.changes


def test_an_updated_row_lists_exactly_the_fields_that_change_with_old_values() -> None:
    rows = batch(holder(first="Ann", last="Lee"))
    result = rows.apply(row(1, "ann", "ann@uni.example", "Anne", "Lee"))
    assert result.outcome is RowOutcome.UPDATED
    assert result.changes == (FieldChange("first_name", "Ann", "Anne"),)


def test_an_approval_shows_the_status_pending_to_active() -> None:
    rows = batch(holder(status=UserStatus.PENDING))
    result = rows.apply(row(1, "ann", "ann@uni.example", "Ann", "Lee"))
    assert (result.outcome, result.approved) == (RowOutcome.UPDATED, True)
    assert result.changes == (FieldChange("status", "PENDING", "ACTIVE"),)


def test_a_sensitive_change_maps_email_to_email_address() -> None:
    rows = batch(holder(username="ann", email="ann@uni.example"), ctx=SENSITIVE)
    result = rows.apply(row(1, "ann.lee", "ann@uni.example", last="Lee-Park"))
    assert result.changes == (
        FieldChange("username", "ann", "ann.lee"),
        FieldChange("last_name", "Lee", "Lee-Park"),
    )
    moved = batch(holder(), ctx=SENSITIVE).apply(row(1, "ann", "ann.lee@uni.example"))
    assert moved.changes == (FieldChange("email_address", "ann@uni.example", "ann.lee@uni.example"),)


def test_letter_case_unchanged_skipped_and_failed_rows_list_nothing() -> None:
    same = batch(holder()).apply(row(1, "ANN", "Ann@uni.example", "Ann"))
    assert (same.outcome, same.changes) == (RowOutcome.UNCHANGED, ())
    skipped = batch(holder(disabled=True)).apply(row(1, "ann", "ann@uni.example", "Anne"))
    assert (skipped.outcome, skipped.changes) == (RowOutcome.SKIPPED, ())
    failed = batch(holder()).apply(row(1, "ann", "other@uni.example"))  # a sync may not move the email
    assert (failed.outcome, failed.changes) == (RowOutcome.FAILED, ())


def test_a_later_row_of_the_batch_sees_what_an_earlier_one_set() -> None:
    rows = batch()
    created = rows.apply(row(5, "cy", "cy@uni.example", "Cy"))
    updated = rows.apply(row(9, "cy", "cy@uni.example", "Cyrus"))
    assert FieldChange("first_name", "", "Cy") in created.changes
    assert updated.changes == (FieldChange("first_name", "Cy", "Cyrus"),)


def test_updated_changes_compares_every_mapped_field() -> None:
    before = holder(status=UserStatus.PENDING, auth="")
    after = holder(username="a2", email="a2@uni.example", status=UserStatus.ACTIVE, auth="sis-1")
    assert [c.field for c in updated_changes(before, after)] == [
        "username",
        "email_address",
        "auth_identifier",
        "status",
    ]
    assert updated_changes(before, before) == ()
