"""Undo of an import job (issue 9): pure rules deciding, per student the job changed, whether the
undo puts the student back, deletes it (created by the job) or leaves it alone (CHANGED_SINCE).

The job's recorded outcomes say what it did (``RecordedChange``: the row's field changes old → new
and the student's version right after the row's batch), and so does its full-roster sweep
(``SweptArchive``: a student archived ACTIVE → ARCHIVED because no row named it, with the version
right after the archive). ``touches`` folds them into one ``JobTouch`` per student: each field's
value before the job (the old value of its first change; ACTIVE for a swept student's status),
whether the job created the student, the version the job left. ``decide_undo`` compares that with
the student as stored now: a different version (staff edited it, an email change, another job, a
merge that removed it) → SKIPPED ``CHANGED_SINCE``; otherwise a revert of exactly the job's
changes (a swept student ACTIVE again), or a delete of the student it created.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from identity_service.domain.identity_keys import EmailIdentity, auth_identifier_key, username_key
from identity_service.domain.student_file import (
    STUDENT_ROW_FIELDS,
    FieldChange,
    Holder,
    RowOutcome,
    StoredStudent,
    updated_changes,
)
from identity_service.domain.users import UserStatus

CHANGED_SINCE = "CHANGED_SINCE"
UNDO_UPDATED_ACTION = "user.updated_by_undo"
UNDO_DELETED_ACTION = "user.deleted_by_undo"
_USER_FIELDS = {row_field: name for name, row_field in STUDENT_ROW_FIELDS.items()}
_CHANGING = frozenset({RowOutcome.CREATED, RowOutcome.UPDATED, RowOutcome.ARCHIVED})


@dataclass(frozen=True)
class RecordedChange:
    """One recorded outcome of the job that changed a student."""

    row_number: int
    outcome: RowOutcome
    user_id: str
    changes: tuple[FieldChange, ...]
    user_version: int | None  # the student's version after the row's batch (None: not known)


@dataclass(frozen=True)
class SweptArchive:
    """One student the job's full-roster sweep archived (ACTIVE → ARCHIVED)."""

    user_id: str
    user_version: int | None  # the student's version right after the archive (None: not known)


@dataclass(frozen=True)
class JobTouch:
    """What one job did to one student, across all its rows and its full-roster sweep."""

    user_id: str
    first_row: int | None  # None: no row of the job changed the student (its sweep archived it)
    created: bool
    before: Mapping[str, str]  # StudentRow field name → its value before the job
    version_after: int | None  # the highest version the job's rows (or its sweep) left


def touches(recorded: Sequence[RecordedChange], swept: Sequence[SweptArchive] = ()) -> list[JobTouch]:
    """One ``JobTouch`` per student: the students the job's rows changed, in the order of the job's
    first row naming each, then the students only its sweep archived, by user id. (A swept student
    is one no row named, so both cannot happen; if they did, the sweep folds into the rows' touch.)"""
    by_user = _row_touches(recorded)
    named = sorted(by_user.values(), key=lambda t: t.first_row or 0)
    only_swept: list[JobTouch] = []
    for archive in sorted(swept, key=lambda a: a.user_id):
        known = by_user.get(archive.user_id)
        before = dict(known.before) if known else {}
        before.setdefault(STUDENT_ROW_FIELDS["status"], UserStatus.ACTIVE.value)
        touch = JobTouch(
            archive.user_id,
            known.first_row if known else None,
            known.created if known else False,
            before,
            _highest(known.version_after if known else None, archive.user_version),
        )
        if known:
            named = [touch if t.user_id == archive.user_id else t for t in named]
        else:
            only_swept.append(touch)
    return named + only_swept


def _highest(*versions: int | None) -> int | None:
    known = [v for v in versions if v is not None]
    return max(known) if known else None


def _row_touches(recorded: Sequence[RecordedChange]) -> dict[str, JobTouch]:
    by_user: dict[str, JobTouch] = {}
    for change in sorted(recorded, key=lambda c: c.row_number):
        if change.outcome not in _CHANGING:
            continue
        known = by_user.get(change.user_id)
        before = dict(known.before) if known else {}
        for field_change in change.changes:
            before.setdefault(field_change.field, field_change.old_value)
        by_user[change.user_id] = JobTouch(
            change.user_id,
            known.first_row if known else change.row_number,
            (known.created if known else False) or change.outcome is RowOutcome.CREATED,
            before,
            _highest(known.version_after if known else None, change.user_version),
        )
    return by_user


class UndoAction(StrEnum):
    REVERT = "REVERT"
    DELETE = "DELETE"
    SKIP = "SKIP"


@dataclass(frozen=True)
class UndoDecision:
    touch: JobTouch
    action: UndoAction
    before: Holder | None  # the student as stored now (None: gone)
    after: Holder | None  # REVERT: the student put back
    message: str = ""

    @property
    def changes(self) -> tuple[FieldChange, ...]:
        """The revert's own changes (old = now, new = before the job); a delete lists what went."""
        if self.action is UndoAction.REVERT and self.before and self.after:
            return updated_changes(self.before, self.after)
        if self.action is UndoAction.DELETE and self.before:
            return tuple(
                FieldChange(row_field, str(value), "")
                for name, row_field in STUDENT_ROW_FIELDS.items()
                if (value := getattr(self.before, name)) not in (None, "")
            )
        return ()


def decide_undo(touch: JobTouch, now: StoredStudent | None, version_now: int | None) -> UndoDecision:
    """Revert / delete / SKIPPED CHANGED_SINCE for one student the job changed."""
    if now is None or version_now is None:
        return UndoDecision(touch, UndoAction.SKIP, None, None, "the student is gone (deleted or merged)")
    if touch.version_after is None or version_now != touch.version_after:
        return UndoDecision(touch, UndoAction.SKIP, now.holder, None, "the student changed after the job")
    if touch.created:
        return UndoDecision(touch, UndoAction.DELETE, now.holder, None, "created by the job: deleted")
    return UndoDecision(touch, UndoAction.REVERT, now.holder, reverted(now.holder, touch.before))


def reverted(holder: Holder, before: Mapping[str, str]) -> Holder:
    """``holder`` with each field the job changed back to its value before the job."""
    values: dict[str, object] = {}
    for row_field, old in before.items():
        name = _USER_FIELDS.get(row_field)
        if name == "status":
            values["status"] = UserStatus(old)
        elif name == "username":
            values["username"] = old or None
        elif name is not None:
            values[name] = old
    return replace(holder, **values)  # type: ignore[arg-type]


def key_clashes(decisions: Sequence[UndoDecision], holders: Collection[StoredStudent]) -> list[UndoDecision]:
    """``decisions`` with every revert whose username, email or auth identifier key is now held by a
    user that keeps it (not reverting away from it) turned into SKIPPED CHANGED_SINCE — repeated
    until nothing clashes, since a skipped revert keeps its keys."""
    current = list(decisions)
    while True:
        moving = {d.touch.user_id for d in current if d.action is not UndoAction.SKIP}
        taken: dict[tuple[str, str], str] = {}
        for stored in holders:
            if stored.holder.id in moving:
                continue
            for key in _keys(stored.holder):
                taken[key] = stored.holder.id
        for d in current:
            if d.action is UndoAction.SKIP and d.before is not None:
                for key in _keys(d.before):
                    taken[key] = d.before.id
        clashing = [
            d
            for d in current
            if d.action is UndoAction.REVERT
            and d.after is not None
            and any(taken.get(key, d.touch.user_id) != d.touch.user_id for key in _keys(d.after))
        ]
        if not clashing:
            return current
        gone = {d.touch.user_id for d in clashing}
        current = [
            UndoDecision(d.touch, UndoAction.SKIP, d.before, None, "a value it had is now another user's")
            if d.touch.user_id in gone
            else d
            for d in current
        ]


def _keys(holder: Holder) -> list[tuple[str, str]]:
    keys = [("email", EmailIdentity.of(holder.email).key)]
    if holder.username:
        keys.append(("username", f"{holder.school_id}:{username_key(holder.username)}"))
    if holder.auth_identifier:
        auth = auth_identifier_key(holder.auth_identifier)
        if auth:
            keys.append(("auth", f"{holder.school_id}:{auth}"))
    return keys
