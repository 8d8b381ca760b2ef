"""ImportService over gRPC: reads, watch, row results, export, re-drive, uploads, access."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Awaitable

import grpc
import pytest

from shared.grpc_kit.errors import error_info, field_violations
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc
from tests.integration.importer.importer_support import (
    ADMIN_MD,
    IMPORTER_MD,
    Connector,
    FakeIdentity,
    eventually,
    job_header,
    staff_md,
    student_rows,
    unique,
)

COMPLETED = pb.IMPORT_JOB_STATE_COMPLETED
Stub = pb_grpc.ImportServiceStub


async def refused(call: Awaitable[object]) -> tuple[grpc.StatusCode, str, grpc.aio.AioRpcError]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    info = error_info(caught.value)
    return caught.value.code(), info.reason if info else "", caught.value


async def finished(importer: Stub, job_id: str) -> pb.ImportJob:
    async def check() -> pb.ImportJob | None:
        try:
            job = await importer.GetImportJob(pb.GetImportJobRequest(job_id=job_id), metadata=ADMIN_MD)
        except grpc.aio.AioRpcError as error:  # not seen by the consumer yet
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None
        return job if job.state == COMPLETED else None

    return await eventually(check, what=f"job {job_id} COMPLETED")


async def run_job(
    connector: Connector, importer: Stub, school: str, rows: list[rows_pb.StudentRow]
) -> pb.ImportJob:
    header = job_header(school)
    await connector.rows(header, rows)
    await connector.end(header, len(rows))
    return await finished(importer, header.job_id)


def mixed_rows() -> list[rows_pb.StudentRow]:
    rows = student_rows(6)
    rows[1].username, rows[3].username = "sens-2", "fail-4"
    rows[3].extra["=cmd"] = "=1+1"
    return rows


async def test_reads_and_access(importer: Stub, connector: Connector, fake_identity: FakeIdentity) -> None:
    school = unique("school")
    older = await run_job(connector, importer, school, mixed_rows())
    newer = await run_job(connector, importer, school, student_rows(2))
    staff, stranger = fake_identity.add_staff(school), fake_identity.add_staff(unique("school"))

    got = await importer.GetImportJob(pb.GetImportJobRequest(job_id=older.job_id), metadata=staff_md(staff))
    assert (got.total_rows, got.rows_received, got.counts.created, got.counts.failed) == (6, 6, 4, 2)
    assert got.HasField("complete_time") and got.mode == rows_pb.IMPORT_MODE_ONGOING_SYNC
    page1 = await importer.ListImportJobs(
        pb.ListImportJobsRequest(school_id=school, page_size=1), metadata=IMPORTER_MD
    )
    page2 = await importer.ListImportJobs(
        pb.ListImportJobsRequest(school_id=school, page_size=1, page_token=page1.next_page_token),
        metadata=staff_md(staff),
    )
    assert [j.job_id for j in (*page1.jobs, *page2.jobs)] == [newer.job_id, older.job_id]
    assert page2.next_page_token == ""

    failed = await importer.ListRowResults(
        pb.ListRowResultsRequest(job_id=older.job_id, outcomes=[rows_pb.ROW_OUTCOME_FAILED]),
        metadata=ADMIN_MD,
    )
    assert [(r.row_number, r.reason) for r in failed.results] == [
        (2, "SENSITIVE_FIELDS_REQUIRED"),
        (4, "INVALID_ROW"),
    ]
    assert failed.results[1].row.username == "fail-4" and failed.results[1].row.extra["cohort"] == "2026"

    get_older = pb.GetImportJobRequest(job_id=older.job_id)
    assert (await refused(importer.GetImportJob(get_older, metadata=staff_md(stranger))))[
        1
    ] == "NOT_STAFF_OF_SCHOOL"
    no_actor = (("authorization", staff_md(staff)[0][1]),)
    assert (await refused(importer.GetImportJob(get_older, metadata=no_actor)))[1] == "NOT_STAFF_OF_SCHOOL"
    missing = pb.GetImportJobRequest(job_id=unique())
    assert (await refused(importer.GetImportJob(missing, metadata=ADMIN_MD)))[:2] == (
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    retry = pb.RetryFailedRowsRequest(job_id=older.job_id)
    assert (await refused(importer.RetryFailedRows(retry, metadata=IMPORTER_MD)))[
        0
    ] == grpc.StatusCode.PERMISSION_DENIED
    assert (await refused(importer.GetImportJob(get_older)))[0] == grpc.StatusCode.UNAUTHENTICATED


async def test_watch_streams_changes_until_completed(importer: Stub, connector: Connector) -> None:
    header = job_header(unique("school"))
    await connector.rows(header, student_rows(30), per_message=10)
    request = pb.WatchImportJobRequest(job_id=header.job_id)

    async def first_seen() -> bool:
        try:
            await importer.GetImportJob(pb.GetImportJobRequest(job_id=header.job_id), metadata=ADMIN_MD)
            return True
        except grpc.aio.AioRpcError:
            return False

    await eventually(first_seen, what="job created")
    stream = importer.WatchImportJob(request, metadata=ADMIN_MD)
    seen = [await anext(aiter(stream))]
    await connector.end(header, 30)
    seen += [job async for job in stream]

    assert seen[-1].state == COMPLETED and seen[-1].rows_received == 30
    assert all(job.state != COMPLETED for job in seen[:-1])
    assert [job.rows_received for job in seen] == sorted(job.rows_received for job in seen)


async def test_export_and_retry_failed_rows(
    importer: Stub, connector: Connector, fake_identity: FakeIdentity
) -> None:
    school = unique("school")
    parent = await run_job(connector, importer, school, mixed_rows())
    staff = fake_identity.add_staff(school)

    chunks = importer.ExportFailedRows(
        pb.ExportFailedRowsRequest(job_id=parent.job_id), metadata=staff_md(staff)
    )
    text = b"".join([chunk.csv_chunk async for chunk in chunks]).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == [
        "username",
        "email_address",
        "first_name",
        "last_name",
        "auth_identifier",
        "cohort",
        "'=cmd",
    ]
    assert [row[0] for row in table[1:]] == ["sens-2", "fail-4"]
    assert table[2][6] == "'=1+1"  # formula injection guarded

    request = pb.RetryFailedRowsRequest(
        job_id=parent.job_id, sensitive_fields_update=True, request_id=unique("req")
    )
    child = await importer.RetryFailedRows(request, metadata=staff_md(staff))
    again = await importer.RetryFailedRows(request, metadata=staff_md(staff))
    assert again.job_id == child.job_id and child.parent_job_id == parent.job_id
    assert child.mode == rows_pb.IMPORT_MODE_MANUAL_FILE and child.sensitive_fields_update
    done = await finished(importer, child.job_id)
    assert (done.total_rows, done.counts.updated, done.counts.approved, done.counts.failed) == (2, 1, 1, 1)
    rows = await importer.ListRowResults(pb.ListRowResultsRequest(job_id=child.job_id), metadata=ADMIN_MD)
    assert [r.row_number for r in rows.results] == [2, 4]  # the parent's row numbers

    request.sensitive_fields_update = False
    assert (await refused(importer.RetryFailedRows(request, metadata=ADMIN_MD)))[1] == "REQUEST_ID_REUSED"


async def _upload(header: pb.FileHeader, data: bytes, piece: int = 7) -> AsyncIterator[pb.SubmitFileRequest]:
    yield pb.SubmitFileRequest(header=header)
    for start in range(0, len(data), piece):
        yield pb.SubmitFileRequest(chunk=data[start : start + piece])
        await asyncio.sleep(0)


async def test_submit_csv_file_completes(importer: Stub, fake_identity: FakeIdentity) -> None:
    school = unique("school")
    staff = fake_identity.add_staff(school)
    lines = ["\ufeffEmail_Address,USERNAME,first_name,Cohort"]
    lines += [f"s{n}@uni.example,{school}-s{n},Ann,2026" for n in range(1, 1201)]
    data = ("\r\n".join(lines) + "\r\n").encode()
    header = pb.FileHeader(
        school_id=school,
        mode=rows_pb.IMPORT_MODE_MANUAL_FILE,
        source_name="roster.csv",
        format=pb.FILE_FORMAT_CSV,
    )

    job = await importer.SubmitFile(_upload(header, data, piece=4096), metadata=staff_md(staff))

    assert job.source_name == "roster.csv" and job.school_id == school
    done = await finished(importer, job.job_id)
    assert (done.total_rows, done.counts.created) == (1200, 1200)


async def test_submit_header_error_publishes_nothing(importer: Stub, fake_identity: FakeIdentity) -> None:
    school = unique("school")
    staff, stranger = fake_identity.add_staff(school), fake_identity.add_staff(unique("school"))
    header = pb.FileHeader(school_id=school, mode=rows_pb.IMPORT_MODE_ONGOING_SYNC, format=pb.FILE_FORMAT_CSV)
    data = b"username,first_name\nann,Ann\n"

    code, reason, error = await refused(importer.SubmitFile(_upload(header, data), metadata=staff_md(staff)))

    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert "email_address" in (error.details() or "")
    assert field_violations(error)[0][0] == "chunk"
    listed = await importer.ListImportJobs(pb.ListImportJobsRequest(school_id=school), metadata=ADMIN_MD)
    assert list(listed.jobs) == []
    outsider = await refused(importer.SubmitFile(_upload(header, data), metadata=staff_md(stranger)))
    assert outsider[1] == "NOT_STAFF_OF_SCHOOL"
    no_mode = pb.FileHeader(school_id=school, format=pb.FILE_FORMAT_CSV)
    _, _, bad = await refused(importer.SubmitFile(_upload(no_mode, data), metadata=ADMIN_MD))
    assert [field for field, _ in field_violations(bad)] == ["header.mode"]


async def test_submit_oneroster_users_imports_students_tobedeleted_as_archive_rows(importer: Stub) -> None:
    school = unique("school")
    data = (
        "sourcedId,status,role,username,email,givenName,familyName,identifier\n"
        f"1,active,student,{school}-a,a@uni.example,Ann,Lee,S1\n"
        f"2,tobedeleted,student,{school}-b,b@uni.example,Bo,Kim,S2\n"
        f"3,active,teacher,{school}-c,c@uni.example,Cy,Poe,T1\n"
        f"4,,student,{school}-d,d@uni.example,Di,Wu,S4\n"
    ).encode()
    header = pb.FileHeader(
        school_id=school, mode=rows_pb.IMPORT_MODE_ONGOING_SYNC, format=pb.FILE_FORMAT_ONEROSTER_USERS
    )

    job = await importer.SubmitFile(_upload(header, data), metadata=ADMIN_MD)

    done = await finished(importer, job.job_id)
    assert done.total_rows == 3  # the fake identity applies every row; the real one is tests/e2e's
    rows = await importer.ListRowResults(pb.ListRowResultsRequest(job_id=job.job_id), metadata=ADMIN_MD)
    assert [(r.row_number, r.row.auth_identifier, r.row.status) for r in rows.results] == [
        (1, "S1", ""),
        (2, "S2", "archived"),  # tobedeleted goes to identity as an archive row
        (4, "S4", ""),
    ]
