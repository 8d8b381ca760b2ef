"""The seed story (seed/pending-student-requests.txt) end to end: students who signed up themselves
are not updated by the nightly sync (SENSITIVE_FIELDS_REQUIRED); staff download the failed rows,
upload that very file again as a manual file with the sensitive-fields setting (or re-drive the
failed rows with it), and the students get their school usernames and leave the pending queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import (
    SENSITIVE_MESSAGE,
    Campus,
    completed_after_release,
    csv_text,
    email,
    new_campus,
    outcome_name,
    publish_csv,
    spec_for,
)
from tests.process_stack import ProcessStack, job_counts

FAILED = [rows_pb.ROW_OUTCOME_FAILED]


async def _nightly_sync(
    stack: ProcessStack, campus: Campus, tmp_path: Path, names: list[str]
) -> tuple[str, list[res.User]]:
    """Students ``names`` sign up with personal addresses; the SIS then sends them under school
    usernames (with the addresses they signed up with) next to two students it creates."""
    pending = [await campus.sign_up(email(name, "gmail.com"), name.title(), "Student") for name in names]
    rows = [[f"s-{u.first_name.lower()}", u.email, u.first_name, u.last_name, ""] for u in pending]
    rows += [["new1", email("new1"), "Nu", "One", ""], ["new2", email("new2"), "Nu", "Two", ""]]
    spec = spec_for(campus.id, source="nightly SIS sync")
    await publish_csv(stack, tmp_path, csv_text(rows), spec)
    job = await stack.wait_job(spec.job_id)
    assert (job.counts.created, job.counts.failed) == (2, len(names))
    failed = await stack.row_results(spec.job_id, FAILED)
    assert [(r.reason, r.message) for r in failed] == [
        ("SENSITIVE_FIELDS_REQUIRED", SENSITIVE_MESSAGE)
    ] * len(names)
    assert await campus.pending_ids() >= {u.id for u in pending}
    return spec.job_id, pending


async def _upload(campus: Campus, content: bytes) -> pb.ImportJob:
    async def requests() -> AsyncIterator[pb.SubmitFileRequest]:
        yield pb.SubmitFileRequest(
            header=pb.FileHeader(
                school_id=campus.id,
                mode=rows_pb.IMPORT_MODE_MANUAL_FILE,
                sensitive_fields_update=True,
                source_name="failed-rows.csv",
                format=pb.FILE_FORMAT_CSV,
            )
        )
        for start in range(0, len(content), 100):  # a browser upload arrives in pieces
            yield pb.SubmitFileRequest(chunk=content[start : start + 100])

    return await campus.stack.importer.SubmitFile(requests(), metadata=campus.staff_md, timeout=30)


async def _assert_approved_with_school_usernames(campus: Campus, pending: list[res.User]) -> None:
    for before in pending:
        after = await campus.user(before.id)
        assert (after.username, after.email) == (f"s-{before.first_name.lower()}", before.email)
        assert after.status == res.USER_STATUS_ACTIVE
    assert not await campus.pending_ids() & {u.id for u in pending}


async def test_export_the_failed_rows_and_upload_them_again_with_sensitive_fields(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await new_campus(stack)
    sync_id, pending = await _nightly_sync(stack, campus, tmp_path, ["ann", "bob", "cat"])

    chunks = [
        c.csv_chunk
        async for c in stack.importer.ExportFailedRows(
            pb.ExportFailedRowsRequest(job_id=sync_id), metadata=campus.staff_md, timeout=30
        )
    ]
    exported = b"".join(chunks)
    lines = exported.decode("utf-8-sig").splitlines()
    assert lines[0] == "username,email_address,first_name,last_name,auth_identifier"
    assert [line.split(",")[:2] for line in lines[1:]] == [
        [f"s-{u.first_name.lower()}", u.email] for u in pending
    ]

    upload = await _upload(campus, exported)
    assert (upload.mode, upload.sensitive_fields_update) == (rows_pb.IMPORT_MODE_MANUAL_FILE, True)
    job = await completed_after_release(stack, campus, upload.job_id)

    assert job_counts(job) == {
        "created": 0,
        "updated": 3,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "approved": 3,
    }
    records = await stack.row_results(upload.job_id)
    assert [(outcome_name(r.outcome), r.approved, r.user_id) for r in records] == [
        ("UPDATED", True, u.id) for u in pending
    ]
    await _assert_approved_with_school_usernames(campus, pending)


async def test_retry_failed_rows_with_sensitive_fields_approves_the_pending_students(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await new_campus(stack)
    sync_id, pending = await _nightly_sync(stack, campus, tmp_path, ["dan", "eve"])

    plain = await stack.importer.RetryFailedRows(
        pb.RetryFailedRowsRequest(job_id=sync_id, sensitive_fields_update=False, request_id="plain-1"),
        metadata=campus.staff_md,
        timeout=30,
    )
    plain_done = await stack.wait_job(plain.job_id)
    assert (plain_done.parent_job_id, plain_done.counts.failed) == (sync_id, 2)  # still refused

    retry = await stack.importer.RetryFailedRows(
        pb.RetryFailedRowsRequest(job_id=sync_id, sensitive_fields_update=True, request_id="sensitive-1"),
        metadata=campus.staff_md,
        timeout=30,
    )
    assert (retry.parent_job_id, retry.mode, retry.sensitive_fields_update) == (
        sync_id,
        rows_pb.IMPORT_MODE_MANUAL_FILE,
        True,
    )
    job = await completed_after_release(stack, campus, retry.job_id)
    assert job_counts(job) == {
        "created": 0,
        "updated": 2,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "approved": 2,
    }
    records = await stack.row_results(retry.job_id)
    assert [r.row_number for r in records] == [1, 2]  # the rows keep their numbers in the first file
    await _assert_approved_with_school_usernames(campus, pending)
