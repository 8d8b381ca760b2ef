"""Issue 9's guarded full rosters over gRPC on PostgreSQL: a dry-run full-roster ApplyStudentRows
remembers whom its rows named (roster_previews) and writes nothing else, so the dry-run sweep lists
exactly the students the roster left out; the real sweep ignores previews and clears them;
UndoStudentRows puts the swept students back ACTIVE (CHANGED_SINCE for one staff changed after the
sweep); GetImportGuard answers the threshold and the school's student count."""

from __future__ import annotations

import itertools
import uuid

import grpc
from google.protobuf import field_mask_pb2, timestamp_pb2

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows
from tests.integration.identity.identity_support import Campus, IdentityClient, invalid, refused, unique

_job_times = itertools.count(1_950_000_000)
_IMPORTER = IdentityClient.md("importer")


def _later() -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=next(_job_times))


async def _apply(
    identity: IdentityClient,
    campus: Campus,
    job: str,
    names: list[str],
    *,
    dry_run: bool = False,
    full_roster: bool = True,
) -> list[str]:
    request = pb.ApplyStudentRowsRequest(
        school_id=campus.school.id,
        job_id=job,
        mode=rows.IMPORT_MODE_ONGOING_SYNC,
        dry_run=dry_run,
        full_roster=full_roster,
        rows=[
            rows.StudentRow(row_number=i + 1, username=n, email_address=campus.email(n), first_name="Ann")
            for i, n in enumerate(names)
        ],
        job_create_time=_later(),
    )
    answer = await identity.stub.ApplyStudentRows(request, metadata=_IMPORTER)
    return [r.user_id for r in answer.results]


async def _sweep(identity: IdentityClient, campus: Campus, job: str, *, dry_run: bool) -> list[str]:
    request = pb.ArchiveStudentsNotInJobRequest(school_id=campus.school.id, job_id=job, dry_run=dry_run)
    answer = await identity.stub.ArchiveStudentsNotInJob(request, metadata=_IMPORTER)
    return [s.user_id for s in answer.archived]


async def _campus_of(identity: IdentityClient, count: int) -> tuple[Campus, dict[str, str]]:
    campus = await identity.new_campus()
    names = [unique("s") for _ in range(count)]
    ids = await _apply(identity, campus, unique("seed-"), names, full_roster=False)
    return campus, dict(zip(names, ids, strict=True))


async def _written(identity: IdentityClient, campus: Campus) -> tuple[int, ...]:
    school = uuid.UUID(campus.school.id)
    return (
        await identity.count("SELECT coalesce(sum(version), 0) FROM users WHERE school_id = $1", school),
        await identity.count("SELECT count(*) FROM users WHERE school_id = $1", school),
        await identity.count("SELECT count(*) FROM audit_events WHERE school_id = $1", school),
        await identity.count("SELECT count(*) FROM import_row_outcomes"),
        await identity.count("SELECT count(*) FROM roster_sweeps WHERE school_id = $1", school),
    )


async def _previews(identity: IdentityClient, job: str) -> dict[int, str]:
    found = await identity.db.fetch("SELECT row_number, user_id FROM roster_previews WHERE job_id = $1", job)
    return {r["row_number"]: str(r["user_id"]) for r in found}


async def test_a_dry_run_roster_then_a_dry_run_sweep_lists_exactly_the_students_not_named(
    identity: IdentityClient,
) -> None:
    campus, ids = await _campus_of(identity, 6)
    names = list(ids)
    named, left = names[:3], names[3:]
    roster = unique("roster-")
    before = await _written(identity, campus)

    answered = await _apply(identity, campus, roster, [*named, unique("newcomer")], dry_run=True)

    assert answered[:3] == [ids[n] for n in named]
    assert await _written(identity, campus) == before  # nothing but the preview
    assert await _previews(identity, roster) == {i + 1: user for i, user in enumerate(answered)}
    assert sorted(await _sweep(identity, campus, roster, dry_run=True)) == sorted(ids[n] for n in left)
    assert await _written(identity, campus) == before

    plain = unique("plain-")  # a dry run without full_roster remembers nothing
    await _apply(identity, campus, plain, named, dry_run=True, full_roster=False)
    assert await _previews(identity, plain) == {}
    assert sorted(await _sweep(identity, campus, plain, dry_run=True)) == sorted(ids.values())


async def test_the_real_sweep_is_not_affected_by_previews_and_clears_them(identity: IdentityClient) -> None:
    campus, ids = await _campus_of(identity, 5)
    names = list(ids)
    roster = unique("roster-")
    await _apply(identity, campus, roster, names[:4], dry_run=True)
    assert len(await _previews(identity, roster)) == 4
    await _apply(identity, campus, roster, names[:2])  # the real run names fewer
    assert len(await _previews(identity, roster)) == 4  # a real run writes no preview

    swept = await _sweep(identity, campus, roster, dry_run=False)

    assert sorted(swept) == sorted(ids[n] for n in names[2:])
    assert await _previews(identity, roster) == {}
    for name in names:
        user = await identity.stub.GetUser(pb.GetUserRequest(id=ids[name]), metadata=identity.admin)
        assert user.status == (res.USER_STATUS_ACTIVE if name in names[:2] else res.USER_STATUS_ARCHIVED)
    assert sorted(await _sweep(identity, campus, roster, dry_run=True)) == sorted(swept)


async def test_undo_puts_back_the_students_the_jobs_sweep_archived(identity: IdentityClient) -> None:
    campus, ids = await _campus_of(identity, 5)
    names = list(ids)
    job = unique("roster-")
    await _apply(identity, campus, job, names[:1])
    swept = sorted(await _sweep(identity, campus, job, dry_run=False))
    assert swept == sorted(ids[n] for n in names[1:])
    stored = await identity.db.fetch(
        "SELECT r.user_version, u.version FROM roster_archives r JOIN users u ON u.id = r.user_id"
        " WHERE r.job_id = $1",
        job,
    )
    assert len(stored) == 4 and all(r["user_version"] == r["version"] for r in stored)
    changed = swept[2]
    staff_edit = pb.SetFileUpdatesRequest(user_id=changed, enabled=False)
    await identity.stub.SetFileUpdates(staff_edit, metadata=campus.staff_md)

    undo_job = unique("undo-")
    request = pb.UndoStudentRowsRequest(
        school_id=campus.school.id, job_id=job, undo_job_id=undo_job, undo_job_create_time=_later()
    )
    results = list((await identity.stub.UndoStudentRows(request, metadata=_IMPORTER)).results)

    assert [(r.row_number, r.user_id) for r in results] == list(enumerate(swept, start=1))
    for result in results:
        if result.user_id == changed:
            assert (result.outcome, result.reason) == (rows.ROW_OUTCOME_SKIPPED, "CHANGED_SINCE")
        else:
            assert result.outcome == rows.ROW_OUTCOME_UPDATED
            assert [(c.field, c.old_value, c.new_value) for c in result.changes] == [
                ("status", "ARCHIVED", "ACTIVE")
            ]
    for user_id in swept:
        user = await identity.stub.GetUser(pb.GetUserRequest(id=user_id), metadata=identity.admin)
        assert user.status == (res.USER_STATUS_ARCHIVED if user_id == changed else res.USER_STATUS_ACTIVE)
    audited = await identity.db.fetch(
        "SELECT user_id, action, details->'status' AS status FROM audit_events"
        " WHERE details->>'undo_of_job_id' = $1 AND details->>'job_id' = $2",
        job,
        undo_job,
    )
    assert sorted(str(e["user_id"]) for e in audited) == [u for u in swept if u != changed]
    assert {(e["action"], e["status"]) for e in audited} == {
        ("user.updated_by_undo", '["ARCHIVED", "ACTIVE"]')
    }
    again = await identity.stub.UndoStudentRows(request, metadata=_IMPORTER)
    assert list(again.results) == results


def _guard(identity: IdentityClient, school_id: str, metadata: object = _IMPORTER):
    return identity.stub.GetImportGuard(pb.GetImportGuardRequest(school_id=school_id), metadata=metadata)


async def test_get_import_guard_answers_the_threshold_and_the_schools_students(
    identity: IdentityClient,
) -> None:
    campus, ids = await _campus_of(identity, 3)
    await identity.sign_up(campus)  # a pending student counts too
    job = unique("roster-")
    await _apply(identity, campus, job, list(ids)[:2])
    sweep = await identity.stub.ArchiveStudentsNotInJob(
        pb.ArchiveStudentsNotInJobRequest(school_id=campus.school.id, job_id=job), metadata=_IMPORTER
    )
    assert len(sweep.archived) == 1  # an archived student counts too
    await identity.stub.UpdateSchool(
        pb.UpdateSchoolRequest(
            school=res.School(id=campus.school.id, change_threshold_percent=7),
            update_mask=field_mask_pb2.FieldMask(paths=["change_threshold_percent"]),
        ),
        metadata=campus.staff_md,
    )

    guard = await _guard(identity, campus.school.id)
    by_admin = await _guard(identity, campus.school.id, identity.admin)

    assert (guard.change_threshold_percent, guard.school_students) == (7, 4)
    assert by_admin == guard and guard.school_students == sweep.school_students
    fresh = await identity.new_campus()
    assert (await _guard(identity, fresh.school.id)).change_threshold_percent == 10


async def test_get_import_guard_refuses_unknown_and_malformed_schools_and_other_roles(
    identity: IdentityClient,
) -> None:
    campus = await identity.new_campus()
    await refused(_guard(identity, str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND, "SCHOOL_NOT_FOUND")
    for bad in ("", "not-an-id", "a\x00b"):
        await invalid(_guard(identity, bad), "school_id")
    for metadata in (campus.staff_md, identity.md("platform")):
        await refused(
            _guard(identity, campus.school.id, metadata),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
