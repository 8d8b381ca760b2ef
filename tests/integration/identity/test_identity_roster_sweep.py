"""Issue 9's full-roster sweep over gRPC on PostgreSQL: ArchiveStudentsNotInJob archives exactly the
ACTIVE file students the job's rows did not name (never pending or file-updates-off students), audits
each, answers the same list on a second call, and a dry run changes nothing."""

from __future__ import annotations

import asyncio

from google.protobuf import timestamp_pb2

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows
from tests.integration.identity.identity_support import Campus, IdentityClient, invalid, unique

_JOB_TIMES = iter(range(1_900_000_000, 2_000_000_000))


async def _apply(identity: IdentityClient, campus: Campus, job: str, names: list[str]) -> list[str]:
    request = pb.ApplyStudentRowsRequest(
        school_id=campus.school.id,
        job_id=job,
        mode=rows.IMPORT_MODE_ONGOING_SYNC,
        rows=[
            rows.StudentRow(row_number=i + 1, username=n, email_address=campus.email(n))
            for i, n in enumerate(names)
        ],
        job_create_time=timestamp_pb2.Timestamp(seconds=next(_JOB_TIMES)),
    )
    answer = await identity.stub.ApplyStudentRows(request, metadata=identity.md("importer"))
    return [r.user_id for r in answer.results]


def _sweep(identity: IdentityClient, campus: Campus, job: str, dry_run: bool = False) -> object:
    request = pb.ArchiveStudentsNotInJobRequest(school_id=campus.school.id, job_id=job, dry_run=dry_run)
    return identity.stub.ArchiveStudentsNotInJob(request, metadata=identity.md("importer"))


async def test_the_sweep_archives_the_students_a_full_roster_left_out_once(identity: IdentityClient) -> None:
    campus = await identity.new_campus()
    names = [unique("s") for _ in range(6)]
    ids = dict(zip(names, await _apply(identity, campus, unique("job-"), names), strict=True))
    kept, gone, off = names[:3], names[3:5], names[5]
    await identity.stub.SetFileUpdates(
        pb.SetFileUpdatesRequest(user_id=ids[off], enabled=False), metadata=campus.staff_md
    )
    pending = await identity.sign_up(
        campus, email=campus.email(unique("p")), password="correct horse battery"
    )
    roster = unique("job-")
    await _apply(identity, campus, roster, kept)

    preview = await _sweep(identity, campus, roster, dry_run=True)
    assert sorted(s.user_id for s in preview.archived) == sorted(ids[n] for n in gone)  # type: ignore[attr-defined]
    first, second = await asyncio.gather(_sweep(identity, campus, roster), _sweep(identity, campus, roster))
    assert sorted(s.user_id for s in first.archived) == sorted(ids[n] for n in gone)  # type: ignore[attr-defined]
    assert list(first.archived) == list(second.archived)  # type: ignore[attr-defined]
    assert all(s.archive_time.seconds > 0 for s in first.archived)  # type: ignore[attr-defined]
    assert first.school_students == 7  # type: ignore[attr-defined]

    async def status(user_id: str) -> int:
        return (await identity.stub.GetUser(pb.GetUserRequest(id=user_id), metadata=identity.admin)).status

    assert [await status(ids[n]) for n in names] == [res.USER_STATUS_ACTIVE] * 3 + [
        res.USER_STATUS_ARCHIVED
    ] * 2 + [res.USER_STATUS_ACTIVE]
    assert await status(pending.id) == res.USER_STATUS_PENDING
    events = await identity.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(school_id=campus.school.id, page_size=100), metadata=identity.admin
    )
    swept = [e for e in events.events if e.action == "user.archived_by_file" and e.details["sweep"]]
    assert sorted(e.user_id for e in swept) == sorted(ids[n] for n in gone)


async def test_a_bad_job_id_is_invalid_argument_naming_it(identity: IdentityClient) -> None:
    campus = await identity.new_campus()
    await invalid(_sweep(identity, campus, "a\x00b"), "job_id")
