"""The full-roster sweep (ArchiveStudentsNotInJob) on the in-memory unit of work: who is archived
(only ACTIVE file students with file updates on whom no row of the job named), the audit, the dry
run, and idempotency per job."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from identity_service.domain.student_file import ImportMode, IncomingRow
from identity_service.domain.users import UserOrigin, UserStatus, UserType
from identity_service.service import schools
from identity_service.service.roster_sweep import archive_students_not_in_job
from identity_service.service.student_file import RowBatchRequest, apply_student_rows
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller
from shared.settings import Role
from tests.unit.identity_service.fakes import FakeDatabase

ADMIN = Caller("admin-console", Role.ADMIN)
IMPORTER = Caller("importer", Role.IMPORTER)


async def _rows(db: FakeDatabase, school_id: str, job: str, names: list[str]) -> list[str]:
    rows = [IncomingRow(i + 1, n, f"{n}@uni.example", n.title(), "Lee", "") for i, n in enumerate(names)]
    request = RowBatchRequest(school_id, job, datetime.now(UTC), ImportMode.ONGOING_SYNC, False, False, rows)
    return [r.user_id or "" for r in await apply_student_rows(db.factory(), request, "importer")]


async def _setup(db: FakeDatabase) -> tuple[str, dict[str, str]]:
    school = (await schools.create_school(db.factory(), ADMIN, "N", ["uni.example"], False, "")).id
    names = ["ann", "bob", "cy", "dee", "eve", "fay", "gus"]
    ids = dict(zip(names, await _rows(db, school, "week1", names), strict=True))
    users = db.users
    users[ids["dee"]] = replace(users[ids["dee"]], file_updates_disabled=True)
    users[ids["eve"]] = replace(users[ids["eve"]], status=UserStatus.PENDING)
    users[ids["fay"]] = replace(users[ids["fay"]], status=UserStatus.DECLINED)
    users[ids["gus"]] = replace(users[ids["gus"]], user_type=UserType.STAFF, origin=UserOrigin.STAFF)
    db.marks.pop(ids["gus"])
    return school, ids


async def test_the_sweep_archives_only_active_file_students_the_job_did_not_name() -> None:
    db = FakeDatabase()
    school, ids = await _setup(db)
    await _rows(db, school, "week2", ["ann"])  # bob and cy missing; dee..gus never candidates
    before = len(db.audit)
    preview = await archive_students_not_in_job(db.factory(), IMPORTER, school, "week2", True)
    assert {s.user_id for s in preview.archived} == {ids["bob"], ids["cy"]}
    assert all(s.archive_time is None for s in preview.archived)
    assert db.users[ids["bob"]].status is UserStatus.ACTIVE and len(db.audit) == before
    swept = await archive_students_not_in_job(db.factory(), IMPORTER, school, "week2", False)
    assert sorted(s.user_id for s in swept.archived) == sorted([ids["bob"], ids["cy"]])
    assert swept.school_students == 6  # gus is staff
    assert {n: db.users[ids[n]].status for n in ids if n != "gus"} == {
        "ann": UserStatus.ACTIVE,
        "bob": UserStatus.ARCHIVED,
        "cy": UserStatus.ARCHIVED,
        "dee": UserStatus.ACTIVE,
        "eve": UserStatus.PENDING,
        "fay": UserStatus.DECLINED,
    }
    events = db.audit[before:]
    assert {e.user_id for e in events} == {ids["bob"], ids["cy"]}
    assert {e.action for e in events} == {"user.archived_by_file"}
    assert all(e.details["sweep"] is True and e.details["job_id"] == "week2" for e in events)


async def test_a_second_sweep_of_the_job_archives_nobody_new_and_answers_the_same_list() -> None:
    db = FakeDatabase()
    school, ids = await _setup(db)
    await _rows(db, school, "week2", ["ann", "bob"])
    first = await archive_students_not_in_job(db.factory(), IMPORTER, school, "week2", False)
    audited = len(db.audit)
    db.users[ids["ann"]] = replace(db.users[ids["ann"]], file_updates_disabled=False)
    again = await archive_students_not_in_job(db.factory(), IMPORTER, school, "week2", False)
    assert again.archived == first.archived and [s.user_id for s in first.archived] == [ids["cy"]]
    assert len(db.audit) == audited


async def test_bad_ids_and_an_unknown_school_are_refused() -> None:
    db = FakeDatabase()
    with pytest.raises(RollcallError) as caught:
        await archive_students_not_in_job(db.factory(), IMPORTER, "x", "", False)
    assert caught.value.reason is Reason.INVALID_ARGUMENT
    with pytest.raises(RollcallError) as missing:
        await archive_students_not_in_job(
            db.factory(), IMPORTER, "00000000-0000-4000-8000-000000000001", "j", False
        )
    assert missing.value.reason is Reason.SCHOOL_NOT_FOUND
