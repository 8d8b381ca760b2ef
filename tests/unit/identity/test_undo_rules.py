"""The undo's pure rules: one touch per student from a job's outcomes, the per-student decision
(revert / delete / CHANGED_SINCE) and the key-clash fixpoint."""

from __future__ import annotations

from identity_service.domain.identity_keys import EmailIdentity
from identity_service.domain.student_file import FieldChange, Holder, RowOutcome, StoredStudent
from identity_service.domain.undo import (
    JobTouch,
    RecordedChange,
    UndoAction,
    decide_undo,
    key_clashes,
    reverted,
    touches,
)
from identity_service.domain.users import UserStatus, UserType

SCHOOL = "s1"


def _holder(user_id: str, username: str, email: str, status: UserStatus = UserStatus.ACTIVE) -> Holder:
    return Holder(user_id, UserType.STUDENT, SCHOOL, status, username, email, "F", "L", "", False)


def _stored(holder: Holder) -> StoredStudent:
    return StoredStudent(holder, None, holder.username, EmailIdentity.of(holder.email))


def test_touches_keep_each_fields_value_before_the_job_and_the_highest_version() -> None:
    recorded = [
        RecordedChange(9, RowOutcome.UPDATED, "a", (FieldChange("first_name", "Cy", "Cyrus"),), 3),
        RecordedChange(5, RowOutcome.CREATED, "a", (FieldChange("first_name", "", "Cy"),), 1),
        RecordedChange(7, RowOutcome.UPDATED, "b", (FieldChange("status", "PENDING", "ACTIVE"),), 4),
        RecordedChange(8, RowOutcome.UNCHANGED, "c", (), None),
    ]
    a, b = touches(recorded)
    assert (a.user_id, a.first_row, a.created, dict(a.before), a.version_after) == (
        "a",
        5,
        True,
        {"first_name": ""},
        3,
    )
    assert (b.user_id, b.created, dict(b.before)) == ("b", False, {"status": "PENDING"})


def test_a_student_at_the_jobs_version_is_reverted_else_changed_since() -> None:
    now = _holder("b", "bob2", "bob@x.example")
    touch = JobTouch("b", 1, False, {"username": "bob", "status": "PENDING"}, 5)
    decision = decide_undo(touch, _stored(now), 5)
    assert decision.action is UndoAction.REVERT
    assert decision.after is not None
    assert (decision.after.username, decision.after.status) == ("bob", UserStatus.PENDING)
    assert decision.changes == (("username", "bob2", "bob"), ("status", "ACTIVE", "PENDING"))
    assert decide_undo(touch, _stored(now), 6).action is UndoAction.SKIP
    assert decide_undo(touch, None, None).action is UndoAction.SKIP
    assert decide_undo(JobTouch("b", 1, False, {}, None), _stored(now), 5).action is UndoAction.SKIP


def test_a_student_the_job_created_is_deleted_when_untouched() -> None:
    now = _holder("e", "eve", "eve@x.example")
    decision = decide_undo(JobTouch("e", 4, True, {"username": ""}, 1), _stored(now), 1)
    assert decision.action is UndoAction.DELETE
    assert ("username", "eve", "") in decision.changes


def test_archives_go_back_to_active_and_a_blank_username_to_none() -> None:
    archived = _holder("a", "ann", "ann@x.example", UserStatus.ARCHIVED)
    back = reverted(archived, {"status": "ACTIVE", "username": ""})
    assert (back.status, back.username) == (UserStatus.ACTIVE, None)


def test_a_revert_taking_back_a_key_someone_else_now_keeps_is_changed_since() -> None:
    ann_now = _holder("a", "ann2", "ann@x.example")
    taker = _holder("z", "ann", "z@x.example")  # took "ann" after the job
    bob_now = _holder("b", "ann", "bob@x.example")  # the job gave bob "ann"... and bob goes back to "bob"
    ann = decide_undo(JobTouch("a", 1, False, {"username": "ann"}, 2), _stored(ann_now), 2)
    bob = decide_undo(JobTouch("b", 2, False, {"username": "bob"}, 2), _stored(bob_now), 2)
    [ann_after, bob_after] = key_clashes([ann, bob], [_stored(bob_now)])
    assert (ann_after.action, bob_after.action) == (UndoAction.REVERT, UndoAction.REVERT)  # a swap back
    [ann_after] = key_clashes([ann], [_stored(taker)])
    assert ann_after.action is UndoAction.SKIP


def test_a_skip_keeps_its_keys_so_a_revert_needing_them_is_skipped_too() -> None:
    ann_now = _holder("a", "ann2", "ann@x.example")
    bob_now = _holder("b", "ann", "bob@x.example")
    ann = decide_undo(JobTouch("a", 1, False, {"username": "ann"}, 2), _stored(ann_now), 2)
    bob_changed = decide_undo(JobTouch("b", 2, False, {"username": "bob"}, 2), _stored(bob_now), 3)
    [ann_after, bob_after] = key_clashes([ann, bob_changed], [_stored(bob_now)])
    assert (ann_after.action, bob_after.action) == (UndoAction.SKIP, UndoAction.SKIP)
