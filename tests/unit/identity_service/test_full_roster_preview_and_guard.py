"""Issue 9's guarded full rosters on the in-memory unit of work: a dry-run full-roster batch remembers
whom its rows named (and writes nothing else), the sweep's dry run counts that preview as named while
the real sweep ignores it and clears it, UndoStudentRows puts back the students the job's sweep
archived (CHANGED_SINCE when changed after the sweep), and GetImportGuard's figures."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from identity_service.domain.student_file import FieldChange, ImportMode, IncomingRow, RowOutcome, RowReason
from identity_service.domain.undo import RecordedChange, SweptArchive, touches
from identity_service.domain.users import UserStatus
from identity_service.service import file_updates, schools
from identity_service.service.import_guard import ImportGuard, get_import_guard
from identity_service.service.roster_sweep import archive_students_not_in_job
from identity_service.service.student_file import RowBatchRequest, apply_student_rows
from identity_service.service.undo import UndoRequest, undo_student_rows
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller
from shared.settings import Role
from tests.unit.identity_service.fakes import FakeDatabase

ADMIN = Caller("admin-console", Role.ADMIN)
IMPORTER = Caller("importer", Role.IMPORTER)
T0 = datetime(2026, 12, 1, tzinfo=UTC)
NAMES = ["ann", "bob", "cy", "dee", "eve"]


def _row(number: int, name: str, first_name: str | None = None) -> IncomingRow:
    return IncomingRow(number, name, f"{name}@uni.example", first_name or name.title(), "Lee", "")


async def _apply(
    db: FakeDatabase,
    school: str,
    job: str,
    at: datetime,
    rows: list[IncomingRow],
    *,
    dry_run: bool = False,
    full_roster: bool = False,
):
    request = RowBatchRequest(
        school, job, at, ImportMode.ONGOING_SYNC, False, dry_run, rows, full_roster=full_roster
    )
    return await apply_student_rows(db.factory(), request, "importer")


async def _campus(db: FakeDatabase) -> tuple[str, dict[str, str]]:
    school = (await schools.create_school(db.factory(), ADMIN, "N", ["uni.example"], False, "")).id
    first = await _apply(db, school, "week1", T0, [_row(i + 1, n) for i, n in enumerate(NAMES)])
    return school, {n: r.user_id or "" for n, r in zip(NAMES, first, strict=True)}


def _snapshot(db: FakeDatabase) -> FakeDatabase:
    kept = copy.deepcopy(db)
    kept.opened = []
    return kept


async def test_a_dry_run_full_roster_batch_remembers_whom_its_rows_named_and_nothing_else() -> None:
    db = FakeDatabase()
    school, ids = await _campus(db)
    before = _snapshot(db)
    rows = [_row(1, "ann"), _row(2, "bob", "Robert"), _row(3, "newcomer"), IncomingRow(4, "", "", "", "", "")]

    results = await _apply(db, school, "roster", T0 + timedelta(days=1), rows, dry_run=True, full_roster=True)

    assert [r.outcome for r in results] == [
        RowOutcome.UNCHANGED,
        RowOutcome.UPDATED,
        RowOutcome.CREATED,
        RowOutcome.FAILED,
    ]
    assert db.previews == {
        ("roster", r.row_number): r.user_id for r in results if r.user_id
    }  # the failed row named nobody
    assert db.previews[("roster", 1)] == ids["ann"] and db.previews[("roster", 2)] == ids["bob"]
    assert (db.users, db.outcomes, db.audit, db.marks) == (
        before.users,
        before.outcomes,
        before.audit,
        before.marks,
    )
    again = await _apply(
        db, school, "roster", T0 + timedelta(days=1), rows[:2], dry_run=True, full_roster=True
    )
    assert [r.outcome for r in again] == [RowOutcome.UNCHANGED, RowOutcome.UPDATED]
    assert len(db.previews) == 3  # a redelivered batch adds nothing


async def test_real_runs_and_dry_runs_without_full_roster_write_no_preview() -> None:
    db = FakeDatabase()
    school, _ = await _campus(db)
    later = T0 + timedelta(days=1)
    await _apply(db, school, "plain-dry", later, [_row(1, "ann")], dry_run=True)
    await _apply(db, school, "real-roster", later, [_row(1, "ann")], full_roster=True)
    assert db.previews == {}
    assert ("plain-dry", 1) not in db.outcomes and ("real-roster", 1) in db.outcomes


async def test_the_sweeps_dry_run_counts_the_preview_and_the_real_sweep_ignores_and_clears_it() -> None:
    db = FakeDatabase()
    school, ids = await _campus(db)
    later = T0 + timedelta(days=1)
    await _apply(
        db, school, "roster", later, [_row(1, "ann"), _row(2, "bob")], dry_run=True, full_roster=True
    )
    await _apply(db, school, "other", later, [_row(1, "cy")], dry_run=True, full_roster=True)

    preview = await archive_students_not_in_job(db.factory(), IMPORTER, school, "roster", True)

    assert [s.user_id for s in preview.archived] == sorted(ids[n] for n in ("cy", "dee", "eve"))
    assert preview.school_students == 5
    assert all(db.users[i].status is UserStatus.ACTIVE for i in ids.values())

    # the job is then applied for real naming only ann: the preview spares nobody from the real sweep
    await _apply(db, school, "roster", later, [_row(1, "ann")], full_roster=True)
    swept = await archive_students_not_in_job(db.factory(), IMPORTER, school, "roster", False)
    assert [s.user_id for s in swept.archived] == sorted(ids[n] for n in ("bob", "cy", "dee", "eve"))
    assert all(s.user_version == db.users[s.user_id].version for s in swept.archived)
    assert set(db.previews) == {("other", 1)}  # the swept job's preview is gone, another job's kept
    after = await archive_students_not_in_job(db.factory(), IMPORTER, school, "roster", True)
    assert after.archived == swept.archived


async def _swept_job(db: FakeDatabase) -> tuple[str, dict[str, str]]:
    """week2 renames ann (its one row); its sweep archives bob, cy, dee and eve."""
    school, ids = await _campus(db)
    week2 = await _apply(
        db, school, "week2", T0 + timedelta(days=1), [_row(1, "ann", "Annie")], full_roster=True
    )
    assert week2[0].outcome is RowOutcome.UPDATED
    swept = await archive_students_not_in_job(db.factory(), IMPORTER, school, "week2", False)
    assert len(swept.archived) == 4
    return school, ids


def _undo(db: FakeDatabase, school: str, job: str, undo_job: str):
    request = UndoRequest(school, job, undo_job, T0 + timedelta(days=3))
    return undo_student_rows(db.factory(), request, "import")


async def test_undo_puts_the_swept_students_back_unless_they_changed_after_the_sweep() -> None:
    db = FakeDatabase()
    school, ids = await _swept_job(db)
    await file_updates.set_file_updates(db.factory(), ADMIN, ids["dee"], False, "")  # staff, after the sweep

    results = await _undo(db, school, "week2", "undo-week2")

    swept = sorted(ids[n] for n in ("bob", "cy", "dee", "eve"))
    assert [r.row_number for r in results] == [1, 2, 3, 4, 5]
    assert [r.user_id for r in results] == [ids["ann"], *swept]  # the rows' students first, then by id
    assert results[0].changes == (FieldChange("first_name", "Annie", "Ann"),)
    by_user = {r.user_id: r for r in results}
    assert (by_user[ids["dee"]].outcome, by_user[ids["dee"]].reason) == (
        RowOutcome.SKIPPED,
        RowReason.CHANGED_SINCE,
    )
    for name in ("bob", "cy", "eve"):
        result = by_user[ids[name]]
        assert (result.outcome, result.changes) == (
            RowOutcome.UPDATED,
            (FieldChange("status", "ARCHIVED", "ACTIVE"),),
        )
        assert db.users[ids[name]].status is UserStatus.ACTIVE
    assert db.users[ids["dee"]].status is UserStatus.ARCHIVED
    events = [e for e in db.audit if e.details.get("undo_of_job_id") == "week2"]
    assert sorted(e.user_id for e in events) == sorted([ids["ann"], ids["bob"], ids["cy"], ids["eve"]])
    assert all(e.action == "user.updated_by_undo" and e.details["job_id"] == "undo-week2" for e in events)
    assert [e.details["status"] for e in events if e.user_id != ids["ann"]] == [["ARCHIVED", "ACTIVE"]] * 3
    assert await _undo(db, school, "week2", "undo-week2") == results  # the same undo job answers the same


def test_touches_fold_the_sweep_after_the_rows_by_user_id_one_per_student() -> None:
    rows = [
        RecordedChange(3, RowOutcome.UPDATED, "u-2", (FieldChange("first_name", "A", "B"),), 4),
        RecordedChange(1, RowOutcome.UNCHANGED, "u-9", (), None),
    ]
    swept = [SweptArchive("u-7", 3), SweptArchive("u-1", None), SweptArchive("u-2", 5)]

    folded = touches(rows, swept)

    assert [(t.user_id, t.first_row, dict(t.before), t.version_after) for t in folded] == [
        ("u-2", 3, {"first_name": "A", "status": "ACTIVE"}, 5),  # both (cannot happen): one touch
        ("u-1", None, {"status": "ACTIVE"}, None),
        ("u-7", None, {"status": "ACTIVE"}, 3),
    ]


async def test_get_import_guard_answers_the_threshold_and_the_schools_students_of_any_status() -> None:
    db = FakeDatabase()
    school, ids = await _campus(db)
    db.users[ids["eve"]] = replace(db.users[ids["eve"]], status=UserStatus.ARCHIVED)
    await schools.update_school(
        db.factory(), ADMIN, school, ["change_threshold_percent"], "", change_threshold_percent=7
    )
    sweep = await archive_students_not_in_job(db.factory(), IMPORTER, school, "nothing", True)

    guard = await get_import_guard(db.factory(), f"  {school.upper()} ")

    assert guard == ImportGuard(7, 5) and guard.school_students == sweep.school_students
    with pytest.raises(RollcallError) as missing:
        await get_import_guard(db.factory(), "00000000-0000-4000-8000-000000000001")
    assert missing.value.reason is Reason.SCHOOL_NOT_FOUND
    for bad in ("", "not-an-id", "a\x00b"):
        with pytest.raises(RollcallError) as caught:
            await get_import_guard(db.factory(), bad)
        assert caught.value.reason is Reason.INVALID_ARGUMENT
        assert [v.field for v in caught.value.violations] == ["school_id"]
