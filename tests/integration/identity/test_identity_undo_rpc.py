"""UndoStudentRows over gRPC against PostgreSQL (issue 9): a sensitive job's renames and approvals
put back, its created student deleted, a student staff changed after the job CHANGED_SINCE and
untouched, audit events naming the undo, the same undo job answering the same, undo of the undo
JOB_NOT_UNDOABLE."""

from __future__ import annotations

import itertools

import grpc
from google.protobuf import timestamp_pb2

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows
from tests.integration.identity.identity_support import Campus, IdentityClient, refused, unique

_job_times = itertools.count(1_850_000_000)


def _later() -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=next(_job_times))


async def _apply(identity: IdentityClient, campus: Campus, job: str, batch: list[rows.StudentRow]) -> list:
    request = pb.ApplyStudentRowsRequest(
        school_id=campus.school.id,
        job_id=job,
        mode=rows.IMPORT_MODE_MANUAL_FILE,
        sensitive_fields_update=True,
        rows=batch,
        job_create_time=_later(),
    )
    return list((await identity.stub.ApplyStudentRows(request, metadata=identity.md("importer"))).results)


def _undo(identity: IdentityClient, campus: Campus, job: str, undo_job: str):
    request = pb.UndoStudentRowsRequest(
        school_id=campus.school.id, job_id=job, undo_job_id=undo_job, undo_job_create_time=_later()
    )
    return identity.stub.UndoStudentRows(request, metadata=identity.md("importer"))


async def test_undo_of_a_sensitive_job_over_grpc(identity: IdentityClient, campus: Campus) -> None:
    ann_email, bob_email, new_email = campus.email("ann"), campus.email("bob"), campus.email("new")
    seed = [
        rows.StudentRow(row_number=1, username="ann", email_address=ann_email, first_name="Ann"),
        rows.StudentRow(row_number=2, username="bob", email_address=bob_email, first_name="Bob"),
    ]
    ann, bob = await _apply(identity, campus, unique("seed-"), seed)
    pending = await identity.sign_up(campus, email=campus.email("pat"))
    job = unique("job-")
    await _apply(
        identity,
        campus,
        job,
        [
            rows.StudentRow(row_number=1, username="ann.lee", email_address=ann_email, first_name="Ann"),
            rows.StudentRow(row_number=2, username="bob.ray", email_address=bob_email, first_name="Bob"),
            rows.StudentRow(row_number=3, username=pending.email, email_address=pending.email),
            rows.StudentRow(row_number=4, username="new", email_address=new_email),
        ],
    )
    staff_edit = pb.SetFileUpdatesRequest(user_id=bob.user_id, enabled=False)
    await identity.stub.SetFileUpdates(staff_edit, metadata=campus.staff_md)

    undo_job = unique("undo-")
    results = list((await _undo(identity, campus, job, undo_job)).results)

    assert [r.row_number for r in results] == [1, 2, 3, 4]
    by_user = {r.user_id: r for r in results}
    assert by_user[ann.user_id].outcome == rows.ROW_OUTCOME_UPDATED
    assert [(c.field, c.old_value, c.new_value) for c in by_user[ann.user_id].changes] == [
        ("username", "ann.lee", "ann")
    ]
    assert (by_user[bob.user_id].outcome, by_user[bob.user_id].reason) == (
        rows.ROW_OUTCOME_SKIPPED,
        "CHANGED_SINCE",
    )
    assert [(c.field, c.new_value) for c in by_user[pending.id].changes] == [("status", "PENDING")]
    [deleted] = [r for r in results if r.outcome == rows.ROW_OUTCOME_DELETED]
    get = identity.stub.GetUser
    md = identity.md("admin")
    assert (await get(pb.GetUserRequest(id=ann.user_id), metadata=md)).username == "ann"
    assert (await get(pb.GetUserRequest(id=bob.user_id), metadata=md)).username == "bob.ray"
    assert (await get(pb.GetUserRequest(id=pending.id), metadata=md)).status == res.USER_STATUS_PENDING
    await refused(
        get(pb.GetUserRequest(id=deleted.user_id), metadata=md),
        grpc.StatusCode.NOT_FOUND,
        "USER_NOT_FOUND",
    )
    named = await identity.count(
        "SELECT count(*) FROM audit_events WHERE details->>'undo_of_job_id' = $1 AND details->>'job_id' = $2",
        job,
        undo_job,
    )
    assert named == 3  # ann and pat put back, the new student deleted; bob untouched

    again = list((await _undo(identity, campus, job, undo_job)).results)
    assert again == results
    await refused(
        _undo(identity, campus, undo_job, unique("undo-")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "JOB_NOT_UNDOABLE",
    )
    await refused(
        _undo(identity, campus, job, unique("undo-")), grpc.StatusCode.FAILED_PRECONDITION, "JOB_NOT_UNDOABLE"
    )
