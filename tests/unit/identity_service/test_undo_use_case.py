"""UndoStudentRows on the in-memory unit of work: a sensitive job's renames put back, its approvals
back to PENDING, its created students deleted, a student changed since left alone (CHANGED_SINCE),
every change audited naming the undo, the same undo job answering the same results, and undo of an
undo or of an undone job refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from identity_service.domain.passwords import PasswordHasher
from identity_service.domain.student_file import ImportMode, IncomingRow, RowOutcome, RowReason
from identity_service.domain.users import UserStatus
from identity_service.service import accounts, file_updates, schools
from identity_service.service.hashing import AsyncPasswordHasher
from identity_service.service.student_file import RowBatchRequest, apply_student_rows
from identity_service.service.undo import UndoRequest, undo_student_rows
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller
from shared.settings import Role
from tests.unit.identity_service.fakes import FakeDatabase

ADMIN = Caller("admin-console", Role.ADMIN)
PLATFORM = Caller("web", Role.PLATFORM)
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def hasher() -> AsyncPasswordHasher:
    return AsyncPasswordHasher(PasswordHasher(time_cost=1, memory_cost_kib=8, parallelism=1))


async def _rows(
    db: FakeDatabase, school: str, job: str, at: datetime, *rows: IncomingRow, sensitive: bool = False
):
    mode = ImportMode.MANUAL_FILE if sensitive else ImportMode.ONGOING_SYNC
    request = RowBatchRequest(school, job, at, mode, sensitive, False, list(rows))
    return await apply_student_rows(db.factory(), request, "importer")


def _undo(db: FakeDatabase, school: str, job: str, undo_job: str):
    return undo_student_rows(
        db.factory(), UndoRequest(school, job, undo_job, T0 + timedelta(days=3)), "import"
    )


async def _story(db: FakeDatabase, hasher: AsyncPasswordHasher) -> tuple[str, dict[str, str]]:
    school = (await schools.create_school(db.factory(), ADMIN, "Northfield", ["uni.example"], False, "")).id
    first = await _rows(
        db,
        school,
        "j1",
        T0,
        IncomingRow(1, "ann", "ann@uni.example", "Ann", "Lee"),
        IncomingRow(2, "bob", "bob@uni.example", "Bob", "Ray"),
    )
    dee = await accounts.sign_up_student(
        db.factory(),
        hasher,
        PLATFORM,
        school_id=school,
        email="dee@uni.example",
        first_name="Dee",
        last_name="Fox",
        password="a long enough passphrase",
        request_id="",
    )
    assert dee.status is UserStatus.PENDING
    redrive = await _rows(
        db,
        school,
        "j2",
        T0 + timedelta(days=1),
        IncomingRow(1, "ann2", "ann@uni.example", "Ann", "Lee"),
        IncomingRow(2, "bob2", "bob@uni.example", "Bob", "Ray"),
        IncomingRow(3, "dee", "dee@uni.example", "Dee", "Fox"),
        IncomingRow(4, "eve", "eve@uni.example", "Eve", "Oak"),
        sensitive=True,
    )
    assert [r.outcome for r in redrive] == [RowOutcome.UPDATED] * 3 + [RowOutcome.CREATED]
    assert redrive[2].approved
    ids = {"ann": first[0].user_id, "bob": first[1].user_id, "dee": dee.id, "eve": redrive[3].user_id}
    return school, {k: v for k, v in ids.items() if v}


async def test_undo_puts_back_renames_and_approvals_deletes_created_and_skips_changed_since(
    hasher: AsyncPasswordHasher,
) -> None:
    db = FakeDatabase()
    school, ids = await _story(db, hasher)
    await file_updates.set_file_updates(db.factory(), ADMIN, ids["bob"], False, "")  # staff, after the job

    results = await _undo(db, school, "j2", "u1")

    by_user = {r.user_id: r for r in results}
    assert [r.row_number for r in results] == [1, 2, 3, 4]
    assert by_user[ids["ann"]].outcome is RowOutcome.UPDATED
    assert by_user[ids["ann"]].changes == (("username", "ann2", "ann"),)
    assert by_user[ids["bob"]].outcome is RowOutcome.SKIPPED
    assert by_user[ids["bob"]].reason is RowReason.CHANGED_SINCE
    # signed up with username = email; the job renamed and approved: both put back
    assert by_user[ids["dee"]].changes == (
        ("username", "dee", "dee@uni.example"),
        ("status", "ACTIVE", "PENDING"),
    )
    assert by_user[ids["eve"]].outcome is RowOutcome.DELETED
    assert db.users[ids["ann"]].username == "ann"
    assert db.users[ids["bob"]].username == "bob2"  # untouched
    assert db.users[ids["dee"]].status is UserStatus.PENDING
    assert ids["eve"] not in db.users
    undo_events = [e for e in db.audit if e.details.get("undo_of_job_id") == "j2"]
    assert sorted((e.action, e.user_id) for e in undo_events) == sorted(
        [
            ("user.updated_by_undo", ids["ann"]),
            ("user.updated_by_undo", ids["dee"]),
            ("user.deleted_by_undo", ids["eve"]),
        ]
    )
    assert all(e.details["job_id"] == "u1" for e in undo_events)


async def test_the_same_undo_job_answers_the_same_results_and_undo_of_an_undo_is_refused(
    hasher: AsyncPasswordHasher,
) -> None:
    db = FakeDatabase()
    school, _ = await _story(db, hasher)
    first = await _undo(db, school, "j2", "u1")
    events = len(db.audit)

    assert await _undo(db, school, "j2", "u1") == first
    assert len(db.audit) == events
    for job, undo_job in (("j2", "u2"), ("u1", "u3"), ("j2", "j2")):
        with pytest.raises(RollcallError) as caught:
            await _undo(db, school, job, undo_job)
        assert caught.value.reason is Reason.JOB_NOT_UNDOABLE


async def test_a_later_job_changing_the_student_makes_it_changed_since(hasher: AsyncPasswordHasher) -> None:
    db = FakeDatabase()
    school, ids = await _story(db, hasher)
    await _rows(
        db, school, "j3", T0 + timedelta(days=2), IncomingRow(1, "ann2", "ann@uni.example", "Annie", "Lee")
    )
    later_unchanged = await _rows(
        db,
        school,
        "j4",
        T0 + timedelta(days=2, hours=1),
        IncomingRow(1, "bob2", "bob@uni.example", "Bob", "Ray"),
    )
    assert later_unchanged[0].outcome is RowOutcome.UNCHANGED  # a row changing nothing is no change

    results = {r.user_id: r for r in await _undo(db, school, "j2", "u1")}

    assert results[ids["ann"]].reason is RowReason.CHANGED_SINCE
    assert db.users[ids["ann"]].first_name == "Annie"
    assert results[ids["bob"]].outcome is RowOutcome.UPDATED
    assert db.users[ids["bob"]].username == "bob"


async def test_undo_of_a_job_with_nothing_recorded_answers_no_rows_and_an_unknown_school_is_refused() -> None:
    db = FakeDatabase()
    school = (await schools.create_school(db.factory(), ADMIN, "Northfield", ["uni.example"], False, "")).id
    assert await _undo(db, school, "nothing", "u1") == []
    with pytest.raises(RollcallError) as caught:
        await _undo(db, "00000000-0000-4000-8000-000000000000", "j", "u9")
    assert caught.value.reason is Reason.SCHOOL_NOT_FOUND
