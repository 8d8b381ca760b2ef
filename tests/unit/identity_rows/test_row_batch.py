"""RowBatch without a database: in-batch effects, the ordering guard, and what it asks to write."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from identity_service.domain.identity_keys import EmailIdentity, username_key
from identity_service.domain.student_file import (
    CREATED_ACTION,
    SUPERSEDED_MESSAGE,
    UPDATED_ACTION,
    Holder,
    ImportContext,
    ImportMark,
    ImportMode,
    RowBatch,
    RowOutcome,
    RowReason,
    StoredStudent,
    ValidRow,
)
from identity_service.domain.users import UserStatus, UserType

SCHOOL = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
SYNC = ImportContext(SCHOOL, ImportMode.ONGOING_SYNC)
SENSITIVE = ImportContext(SCHOOL, ImportMode.MANUAL_FILE, sensitive_fields_update=True)


def valid(number: int, username: str, email: str, first: str = "") -> ValidRow:
    return ValidRow(number, username, email, first, "", "")


def stored(
    user_id: str,
    username: str | None,
    email: str,
    *,
    mark: ImportMark | None = None,
    school: str | None = SCHOOL,
    user_type: UserType = UserType.STUDENT,
    status: UserStatus = UserStatus.ACTIVE,
    first: str = "",
    disabled: bool = False,
) -> StoredStudent:
    holder = Holder(user_id, user_type, school, status, username, email, first, "", "", disabled)
    return StoredStudent(holder, mark, username_key(username) if username else None, EmailIdentity.of(email))


def batch(*students: StoredStudent, ctx: ImportContext = SYNC, job: str = "job") -> RowBatch:
    ids = (f"new-{n}" for n in itertools.count(1))
    return RowBatch(ctx, job, T0, students, new_id=lambda: next(ids))


def test_marks_compare_rows_within_a_job_and_job_times_across_jobs() -> None:
    assert ImportMark(T0 + timedelta(days=1), "j", 4).precedes(ImportMark(T0, "j", 5))
    assert not ImportMark(T0, "j", 5).precedes(ImportMark(T0, "j", 5))
    assert ImportMark(T0, "k", 900).precedes(ImportMark(T0 + timedelta(seconds=1), "a", 1))
    assert ImportMark(T0, "a", 9).precedes(ImportMark(T0, "b", 1))  # same time: job id breaks the tie


def test_a_student_created_by_an_early_row_is_updated_by_a_later_one() -> None:
    rows = batch()
    created = rows.apply(valid(5, "ann", "ann@u.edu", "A"))
    updated = rows.apply(valid(9, "ANN", "Ann@U.edu", "B"))
    assert (created.outcome, created.user_id) == (RowOutcome.CREATED, "new-1")
    assert (updated.outcome, updated.user_id, updated.message) == (
        RowOutcome.UPDATED,
        "new-1",
        "updated first_name",
    )
    writes = rows.writes()
    assert [s.holder.first_name for s in writes.creates] == ["B"] and writes.updates == []
    assert writes.creates[0].mark == ImportMark(T0, "job", 9)
    # both events go through the audit port: the creation's (the student as inserted) first
    assert [(a.action, a.details["row_number"]) for a in writes.audit] == [
        (CREATED_ACTION, 9),
        (UPDATED_ACTION, 9),
    ]
    assert writes.audit[0].details == {
        "username": [None, "ann"],
        "email": [None, "ann@u.edu"],
        "first_name": [None, "B"],
        "status": [None, "ACTIVE"],
        "origin": [None, "STUDENT_FILE"],
        "job_id": "job",
        "row_number": 9,
    }


def test_a_row_before_the_stored_mark_is_superseded_and_writes_nothing() -> None:
    rows = batch(stored("u1", "ann", "ann@u.edu", mark=ImportMark(T0, "job", 7), first="Old"))
    result = rows.apply(valid(3, "ann", "ann@u.edu", "New"))
    assert (result.outcome, result.reason, result.user_id, result.message) == (
        RowOutcome.SKIPPED,
        RowReason.SUPERSEDED,
        "u1",
        SUPERSEDED_MESSAGE,
    )
    assert rows.writes().updates == [] and rows.writes().audit == []


def test_the_guard_also_catches_a_row_naming_the_student_by_its_old_email() -> None:
    later = ImportMark(T0, "job", 9)
    rows = batch(stored("u1", "ann", "new@u.edu", mark=later), ctx=SENSITIVE)
    result = rows.apply(valid(5, "ann", "old@u.edu"))
    assert (result.outcome, result.reason) == (RowOutcome.SKIPPED, RowReason.SUPERSEDED)


def test_another_schools_mark_does_not_hide_email_taken() -> None:
    elsewhere = stored(
        "u9", "zed", "zed@o.edu", school=OTHER, mark=ImportMark(T0 + timedelta(days=9), "x", 1)
    )
    result = batch(elsewhere).apply(valid(1, "zed", "zed@o.edu"))
    assert (result.outcome, result.reason) == (RowOutcome.FAILED, RowReason.EMAIL_TAKEN)


def test_an_unchanged_row_moves_the_mark_without_a_change() -> None:
    rows = batch(stored("u1", "ann", "ann@u.edu", first="A"))
    assert rows.apply(valid(4, "ann", "ann@u.edu", "A")).outcome is RowOutcome.UNCHANGED
    [student] = rows.writes().updates
    assert (student.marked, student.changed, student.mark) == (True, False, ImportMark(T0, "job", 4))
    assert rows.writes().audit == []


def test_skipped_and_failed_rows_leave_students_alone() -> None:
    rows = batch(stored("u1", "ann", "ann@u.edu", disabled=True), stored("u2", "bob", "bob@u.edu"))
    skipped = rows.apply(valid(1, "ann", "ann@u.edu", "X"))
    failed = rows.apply(valid(2, "ann", "bob@u.edu"))
    assert (skipped.reason, failed.reason) == (RowReason.FILE_UPDATES_DISABLED, RowReason.IDENTITY_CONFLICT)
    assert rows.writes().updates == [] and rows.writes().creates == []


def test_an_approval_is_audited_with_the_status_change() -> None:
    rows = batch(stored("u1", "ann", "ann@u.edu", status=UserStatus.PENDING))
    result = rows.apply(valid(1, "ann", "ann@u.edu"))
    assert (result.outcome, result.approved) == (RowOutcome.UPDATED, True)
    [entry] = rows.writes().audit
    assert entry.details["status"] == ["PENDING", "ACTIVE"] and entry.details["approved"] is True
    assert rows.writes().updates[0].holder.status is UserStatus.ACTIVE


def test_a_sensitive_change_re_indexes_the_student() -> None:
    rows = batch(stored("u1", "ann@u.edu", "ann@u.edu"), ctx=SENSITIVE)
    assert rows.apply(valid(1, "ann", "ann@u.edu")).outcome is RowOutcome.UPDATED
    again = rows.apply(valid(2, "ann", "ann@u.edu"))
    assert (again.outcome, again.user_id) == (RowOutcome.UNCHANGED, "u1")
    assert rows.apply(valid(3, "ann@u.edu", "other@u.edu")).outcome is RowOutcome.CREATED
    assert rows.writes().park == []


def test_a_key_given_up_and_taken_by_another_update_parks_the_changed_students() -> None:
    rows = batch(stored("a", "ann", "x@u.edu"), stored("b", "bob", "y@u.edu"), ctx=SENSITIVE)
    assert rows.apply(valid(1, "ann", "z@u.edu")).outcome is RowOutcome.UPDATED
    assert rows.apply(valid(2, "bob", "x@u.edu")).outcome is RowOutcome.UPDATED
    writes = rows.writes()
    assert sorted(writes.park) == ["a", "b"]
    assert {s.holder.id: s.holder.email for s in writes.updates} == {"a": "z@u.edu", "b": "x@u.edu"}


def test_a_staff_username_of_the_school_is_u_but_another_schools_is_not() -> None:
    staff = stored("s1", "boss", "boss@u.edu", user_type=UserType.STAFF)
    elsewhere = stored("o1", "zed", "zed@o.edu", school=OTHER)
    rows = batch(staff, elsewhere)
    assert rows.apply(valid(1, "boss", "new@u.edu")).reason is RowReason.IDENTITY_CONFLICT
    assert rows.apply(valid(2, "zed", "zed2@u.edu")).outcome is RowOutcome.CREATED


ALPHA_ANN = "\u0251nn@u.edu"  # LATIN SMALL LETTER ALPHA: one script, the skeleton of ann@u.edu


def test_a_lookalike_of_another_users_address_fails_but_ones_own_may_be_replaced() -> None:
    rows = batch(stored("u1", "alpha", ALPHA_ANN), stored("u2", "bob", "bob@u.edu"), ctx=SENSITIVE)
    taken = rows.apply(valid(1, "new", "ann@u.edu"))
    assert (taken.outcome, taken.reason) == (RowOutcome.FAILED, RowReason.EMAIL_CONFUSABLE)
    stolen = rows.apply(valid(2, "bob", "ann@u.edu"))  # bob would take on a lookalike of u1's address
    assert (stolen.outcome, stolen.reason) == (RowOutcome.FAILED, RowReason.EMAIL_CONFUSABLE)
    own = rows.apply(valid(3, "alpha", "ann@u.edu"))  # u1 replaces its own address with the plain one
    assert (own.outcome, own.user_id) == (RowOutcome.UPDATED, "u1")
    after = rows.apply(valid(4, "new", ALPHA_ANN))  # the old spelling is free, its lookalike is u1's
    assert (after.outcome, after.reason) == (RowOutcome.FAILED, RowReason.EMAIL_CONFUSABLE)
