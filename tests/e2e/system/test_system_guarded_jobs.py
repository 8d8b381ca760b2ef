"""Issue 9's file-safety stories through both running services, the broker and PostgreSQL, as a
careers office lives them: a manual file that would change 30 % of a school's emails is HELD with a
preview of every change, discarded with nothing changed, and applied once under the threshold; a
full roster missing 5 % archives exactly those students (never pending, declined, staff or
file-updates-off ones), who cannot sign in until next week's file restores them; an empty or
truncated roster is HELD; the undo of a sensitive re-drive puts usernames and approvals back except
for a student staff changed since; and a held job released while a later job for the same students
applies ends with the later job's values."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from import_service.domain.jobs import ImportMode, JobSpec
from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import (
    PASSWORD,
    Campus,
    csv_text,
    new_campus,
    outcome_name,
    publish_csv,
    spec_for,
)
from tests.process_stack import ProcessStack, unique

HELD = pb.IMPORT_JOB_STATE_HELD
COMPLETED = pb.IMPORT_JOB_STATE_COMPLETED


def _held(job: pb.ImportJob) -> bool:
    return job.state == HELD


def _ended(job: pb.ImportJob) -> bool:
    return job.state in (COMPLETED, HELD, pb.IMPORT_JOB_STATE_DISCARDED)


def _manual(school_id: str) -> JobSpec:
    return spec_for(school_id, mode=ImportMode.MANUAL_FILE, sensitive=True, source="careers upload.csv")


def _roster(school_id: str) -> JobSpec:
    return replace(spec_for(school_id, source="SIS full roster"), full_roster=True)


async def _file(stack: ProcessStack, tmp: Path, spec: JobSpec, rows: list[tuple[str, ...]]) -> pb.ImportJob:
    await publish_csv(stack, tmp, csv_text(rows), spec, rows_per_message=50)
    return await stack.wait_job(spec.job_id, timeout=90, until=_ended)


async def _seed(stack: ProcessStack, tmp: Path, campus: Campus, count: int) -> list[tuple[str, ...]]:
    """``count`` students loaded by an ordinary sync (the rows as the SIS sends them)."""
    tag = uuid.uuid4().hex[:6]
    rows = [(f"{tag}-{n}", f"{tag}-{n}@uni.example", "Ann", f"Lee {n}", "") for n in range(count)]
    job = await _file(stack, tmp, spec_for(campus.id), rows)
    assert (job.state, job.counts.created) == (COMPLETED, count)
    return rows


async def _emails(campus: Campus) -> dict[str, str]:
    return {u.username: u.email for u in await campus.users() if u.user_type == res.USER_TYPE_STUDENT}


async def _threshold(campus: Campus, percent: int) -> None:
    request = ipb.UpdateSchoolRequest(
        school=res.School(id=campus.id, change_threshold_percent=percent),
        update_mask=field_mask_pb2.FieldMask(paths=["change_threshold_percent"]),
    )
    await campus.stack.identity.UpdateSchool(request, metadata=campus.staff_md, timeout=10)


async def test_a_file_changing_30_percent_of_emails_is_held_previewed_discarded_applied_under_threshold(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await new_campus(stack, "Held University")
    rows = await _seed(stack, tmp_path, campus, 10)
    before = await _emails(campus)
    changed = [
        (u, f"new-{e}", f, la, a) if n in (2, 5, 7) else (u, e, f, la, a)
        for n, (u, e, f, la, a) in enumerate(rows)
    ]

    job = await _file(stack, tmp_path, _manual(campus.id), changed)
    assert job.state == HELD, job
    assert (
        job.hold.sensitive_changes,
        job.hold.archives,
        job.hold.school_students,
        job.hold.threshold_percent,
    ) == (
        3,
        0,
        10,
        10,
    )
    preview = await stack.row_results(job.job_id, [rows_pb.ROW_OUTCOME_UPDATED])
    assert sorted((c.field, c.old_value, c.new_value) for r in preview for c in r.changes) == sorted(
        ("email_address", rows[n][1], f"new-{rows[n][1]}") for n in (2, 5, 7)
    )
    assert await _emails(campus) == before, "a held job applies nothing"

    discarded = await stack.importer.DiscardImportJob(
        pb.DiscardImportJobRequest(job_id=job.job_id, request_id=unique("discard")), metadata=campus.staff_md
    )
    assert discarded.state == pb.IMPORT_JOB_STATE_DISCARDED
    await asyncio.sleep(0.5)
    assert await _emails(campus) == before, "discard changes nothing"
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stack.importer.ReleaseImportJob(
            pb.ReleaseImportJobRequest(job_id=job.job_id), metadata=campus.staff_md
        )
    assert (again.value.code(), error_info(again.value).reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "JOB_NOT_HELD",
    )

    await _threshold(campus, 40)
    applied = await _file(stack, tmp_path, _manual(campus.id), changed)
    assert (applied.state, applied.counts.updated, applied.counts.unchanged) == (COMPLETED, 3, 7)
    after = await _emails(campus)
    assert sorted(after[rows[n][0]] for n in (2, 5, 7)) == sorted(f"new-{rows[n][1]}" for n in (2, 5, 7))


async def _approved_by_file(
    stack: ProcessStack, tmp: Path, campus: Campus, count: int
) -> tuple[list[tuple[str, ...]], list[str]]:
    """``count`` students who signed up (with a password) and whom a sync file then approved."""
    addresses = [f"self-{uuid.uuid4().hex[:6]}-{n}@uni.example" for n in range(count)]
    ids = [(await campus.sign_up(a)).id for a in addresses]
    rows = [(a, a, "Pat", "Self", "") for a in addresses]
    job = await _file(stack, tmp, spec_for(campus.id), rows)
    assert job.counts.approved == count
    return rows, ids


async def test_a_full_roster_missing_5_percent_archives_exactly_those_until_next_weeks_file_restores_them(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await new_campus(stack, "Roster University")
    kept = await _seed(stack, tmp_path, campus, 37)
    leaving_rows, leaving = await _approved_by_file(stack, tmp_path, campus, 2)
    off = await _seed(stack, tmp_path, campus, 1)  # file updates turned off by staff: never swept
    off_user = next(u for u in await campus.users() if u.username == off[0][0])
    await campus.set_file_updates(off_user.id, False)
    pending = await campus.sign_up(f"pending-{uuid.uuid4().hex[:6]}@uni.example")
    declined = await campus.sign_up(f"declined-{uuid.uuid4().hex[:6]}@uni.example")
    await stack.identity.DeclineStudent(
        ipb.DeclineStudentRequest(user_id=declined.id), metadata=campus.staff_md
    )

    job = await _file(stack, tmp_path, _roster(campus.id), kept)  # 40 file students, 2 missing: 5 %
    assert job.state == COMPLETED and job.full_roster, job
    assert job.counts.archived == 2 and job.hold.archives == 2
    archives = await stack.importer.ListJobArchives(
        pb.ListJobArchivesRequest(job_id=job.job_id), metadata=campus.staff_md
    )
    assert sorted(a.user_id for a in archives.archives) == sorted(leaving)
    assert all(a.archive_time.seconds > 0 for a in archives.archives)
    status = {u.id: u.status for u in await campus.users()}
    assert [status[i] for i in leaving] == [res.USER_STATUS_ARCHIVED] * 2
    assert status[off_user.id] == res.USER_STATUS_ACTIVE
    assert (status[pending.id], status[declined.id]) == (res.USER_STATUS_PENDING, res.USER_STATUS_DECLINED)
    assert status[campus.staff.id] == res.USER_STATUS_ACTIVE
    for address, *_ in leaving_rows:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.identity.Authenticate(
                ipb.AuthenticateRequest(email=address, password=PASSWORD),
                metadata=stack.platform_md,
                timeout=20,
            )
        assert error_info(refused.value).reason == "INVALID_CREDENTIALS"

    next_week = await _file(stack, tmp_path, _roster(campus.id), kept + leaving_rows)
    assert (next_week.state, next_week.counts.archived) == (COMPLETED, 0)
    restored = await stack.row_results(next_week.job_id, [rows_pb.ROW_OUTCOME_UPDATED])
    assert sorted(r.user_id for r in restored if r.message == "unarchived") == sorted(leaving)
    signed_in = await stack.identity.Authenticate(
        ipb.AuthenticateRequest(email=leaving_rows[0][0], password=PASSWORD),
        metadata=stack.platform_md,
        timeout=20,
    )
    assert signed_in.id == leaving[0] and signed_in.status == res.USER_STATUS_ACTIVE


@pytest.mark.parametrize("rows_sent", [0, 8])
async def test_an_empty_or_truncated_full_roster_is_held_never_applied(
    stack: ProcessStack, tmp_path: Path, rows_sent: int
) -> None:
    campus = await new_campus(stack, "Truncated University")
    rows = await _seed(stack, tmp_path, campus, 40)
    job = await _file(stack, tmp_path, _roster(campus.id), rows[:rows_sent])
    assert job.state == HELD, job
    assert (job.hold.archives, job.hold.school_students) == (40 - rows_sent, 40)
    would = await stack.importer.ListJobArchives(
        pb.ListJobArchivesRequest(job_id=job.job_id, page_size=500), metadata=campus.staff_md
    )
    assert len(would.archives) == 40 - rows_sent and not any(
        a.HasField("archive_time") for a in would.archives
    )
    await asyncio.sleep(1.0)
    assert {u.status for u in await campus.users()} == {res.USER_STATUS_ACTIVE}
    assert (await stack.get_job(job.job_id)).state == HELD  # type: ignore[union-attr]


async def test_undo_of_a_sensitive_redrive_puts_usernames_and_approvals_back_except_what_staff_changed_since(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await new_campus(stack, "Undo University")
    rows = await _seed(stack, tmp_path, campus, 6)
    newcomers = [await campus.sign_up(f"new-{uuid.uuid4().hex[:6]}-{n}@uni.example") for n in range(2)]
    renamed = [(f"renamed-{u}", e, f, la, a) for u, e, f, la, a in rows[:3]]
    newcomer_rows = [
        (f"nc-{n}-{uuid.uuid4().hex[:4]}", p.email, "New", "Comer", "") for n, p in enumerate(newcomers)
    ]
    sync = await _file(stack, tmp_path, spec_for(campus.id), renamed + newcomer_rows)
    assert sync.counts.failed == 5, "a sync never changes usernames"

    redrive = await stack.importer.RetryFailedRows(
        pb.RetryFailedRowsRequest(
            job_id=sync.job_id, sensitive_fields_update=True, request_id=unique("retry")
        ),
        metadata=campus.staff_md,
    )
    held = await stack.wait_job(redrive.job_id, timeout=90, until=_ended)
    assert held.state == HELD and held.hold.sensitive_changes == 5  # 5 of 8 students: over 10 %
    await stack.importer.ReleaseImportJob(
        pb.ReleaseImportJobRequest(job_id=redrive.job_id, request_id=unique("release")),
        metadata=campus.staff_md,
    )
    done = await stack.wait_job(redrive.job_id, timeout=90)
    assert (done.counts.updated, done.counts.approved) == (5, 2)
    users = {u.id: u for u in await campus.users()}
    assert all(users[p.id].status == res.USER_STATUS_ACTIVE for p in newcomers)
    edited = next(u for u in users.values() if u.username == renamed[0][0])
    await campus.set_file_updates(edited.id, False)  # staff change a student after the job

    undo = await stack.importer.UndoImportJob(
        pb.UndoImportJobRequest(job_id=redrive.job_id, request_id=unique("undo")), metadata=campus.staff_md
    )
    assert undo.undo_of_job_id == redrive.job_id
    undone = await stack.wait_job(undo.job_id, timeout=90)
    results = await stack.row_results(undo.job_id)
    by_user = {r.user_id: r for r in results}
    assert (outcome_name(by_user[edited.id].outcome), by_user[edited.id].reason) == (
        "SKIPPED",
        "CHANGED_SINCE",
    )
    assert (undone.counts.updated, undone.counts.skipped) == (4, 1)
    after = {u.id: u for u in await campus.users()}
    assert after[edited.id].username == renamed[0][0], "untouched: staff changed it since"
    for original, renamed_row in zip(rows[1:3], renamed[1:3], strict=True):
        student = next(u for u in after.values() if u.email == original[1])
        assert student.username == original[0] != renamed_row[0]
    assert all(
        after[p.id].status == res.USER_STATUS_PENDING and after[p.id].username == p.username
        for p in newcomers
    )
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stack.importer.UndoImportJob(
            pb.UndoImportJobRequest(job_id=redrive.job_id), metadata=campus.staff_md
        )
    assert error_info(twice.value).reason == "JOB_NOT_UNDOABLE"
    with pytest.raises(grpc.aio.AioRpcError) as of_undo:
        await stack.importer.UndoImportJob(
            pb.UndoImportJobRequest(job_id=undo.job_id), metadata=campus.staff_md
        )
    assert error_info(of_undo.value).reason == "JOB_NOT_UNDOABLE"


async def test_a_held_job_released_while_a_later_job_applies_ends_with_the_later_jobs_values(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await new_campus(stack, "Race University")
    rows = await _seed(stack, tmp_path, campus, 300)
    older = [(u, f"old-{e}" if n % 3 == 0 else e, "Older", la, a) for n, (u, e, f, la, a) in enumerate(rows)]
    newer = [(u, f"new-{e}" if n % 3 == 0 else e, "Newer", la, a) for n, (u, e, f, la, a) in enumerate(rows)]

    first = await _file(stack, tmp_path, _manual(campus.id), older)
    assert first.state == HELD
    await _threshold(campus, 50)
    later = _manual(campus.id)
    publishing = asyncio.create_task(
        publish_csv(stack, tmp_path, csv_text(newer), later, rows_per_message=20)
    )
    await stack.wait_job(
        later.job_id, timeout=90, until=lambda job: job.rows_received > 0, what="later job started"
    )
    await stack.importer.ReleaseImportJob(
        pb.ReleaseImportJobRequest(job_id=first.job_id), metadata=campus.staff_md
    )
    await publishing
    await stack.wait_job(later.job_id, timeout=120)
    await stack.wait_job(first.job_id, timeout=120)

    students = {u.username: u for u in await campus.users() if u.user_type == res.USER_TYPE_STUDENT}
    assert {students[u].first_name for u, *_ in rows} == {"Newer"}
    assert sorted(students[u].email for u, *_ in newer) == sorted(e for _, e, *_ in newer)
