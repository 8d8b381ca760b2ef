"""Field-level changes over gRPC (issue 9): ApplyStudentRows says, per row, which fields it changed
(or in a dry run would change), old → new; a replayed row returns the same changes."""

from __future__ import annotations

import itertools

from google.protobuf import timestamp_pb2

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows
from tests.integration.identity.identity_support import Campus, IdentityClient, unique

_job_times = itertools.count(1_800_000_000)


def _later() -> timestamp_pb2.Timestamp:
    """Each job later than the one before (a job's rows never lose to an earlier job's marks)."""
    return timestamp_pb2.Timestamp(seconds=next(_job_times))


def _request(campus: Campus, batch: list[rows.StudentRow], **fields: object) -> pb.ApplyStudentRowsRequest:
    return pb.ApplyStudentRowsRequest(
        school_id=campus.school.id,
        job_id=unique("job-"),
        mode=rows.IMPORT_MODE_MANUAL_FILE,
        sensitive_fields_update=True,
        rows=batch,
        job_create_time=_later(),
        **fields,  # type: ignore[arg-type]
    )


def _changes(result: rows.RowResult) -> list[tuple[str, str, str]]:
    return [(c.field, c.old_value, c.new_value) for c in result.changes]


async def test_created_updated_approved_dry_run_and_replay_return_the_same_changes(
    identity: IdentityClient, campus: Campus
) -> None:
    pending = await identity.sign_up(campus, email=campus.email("pat"))
    new_email = campus.email("new1")
    seed = _request(
        campus,
        [rows.StudentRow(row_number=1, username="ann", email_address=campus.email("ann"), first_name="Ann")],
    )
    [created] = (await identity.stub.ApplyStudentRows(seed, metadata=identity.md("importer"))).results
    assert created.outcome == rows.ROW_OUTCOME_CREATED
    assert _changes(created) == [
        ("username", "", "ann"),
        ("email_address", "", campus.email("ann")),
        ("first_name", "", "Ann"),
        ("status", "", "ACTIVE"),
    ]

    batch = [
        # username changes (sensitive), first name changes, email stays
        rows.StudentRow(
            row_number=1, username="ann.lee", email_address=campus.email("ann"), first_name="Anne"
        ),
        # a pending sign-up matched by username and email: approved
        rows.StudentRow(row_number=2, username=pending.email, email_address=pending.email),
        rows.StudentRow(row_number=3, username="new1", email_address=new_email, last_name="Ng"),
        rows.StudentRow(row_number=4, username="", email_address="not-an-email"),
    ]
    request = _request(campus, batch)
    dry_request = pb.ApplyStudentRowsRequest()
    dry_request.CopyFrom(request)
    dry_request.dry_run = True
    dry = (await identity.stub.ApplyStudentRows(dry_request, metadata=identity.md("importer"))).results
    first = (await identity.stub.ApplyStudentRows(request, metadata=identity.md("importer"))).results
    again = (await identity.stub.ApplyStudentRows(request, metadata=identity.md("importer"))).results

    expected = [
        [("username", "ann", "ann.lee"), ("first_name", "Ann", "Anne")],
        [("status", "PENDING", "ACTIVE")],
        [
            ("username", "", "new1"),
            ("email_address", "", new_email),
            ("last_name", "", "Ng"),
            ("status", "", "ACTIVE"),
        ],
        [],
    ]
    assert [_changes(r) for r in dry] == expected
    assert [_changes(r) for r in first] == expected
    assert [_changes(r) for r in again] == expected  # replayed from identity's recorded outcomes
    assert [r.outcome for r in first] == [
        rows.ROW_OUTCOME_UPDATED,
        rows.ROW_OUTCOME_UPDATED,
        rows.ROW_OUTCOME_CREATED,
        rows.ROW_OUTCOME_FAILED,
    ]
    assert first[1].approved and first[1].user_id == pending.id
    stored = await identity.count(
        "SELECT jsonb_array_length(changes) FROM import_row_outcomes WHERE job_id = $1 AND row_number = 1",
        request.job_id,
    )
    assert stored == 2


async def test_unchanged_and_skipped_rows_carry_no_changes(identity: IdentityClient, campus: Campus) -> None:
    row = rows.StudentRow(row_number=1, username="cy", email_address=campus.email("cy"), first_name="Cy")
    await identity.stub.ApplyStudentRows(_request(campus, [row]), metadata=identity.md("importer"))
    [same] = (
        await identity.stub.ApplyStudentRows(_request(campus, [row]), metadata=identity.md("importer"))
    ).results
    assert same.outcome == rows.ROW_OUTCOME_UNCHANGED and list(same.changes) == []
