"""Rows from the queue to recorded outcomes: bodies, chunking, completion, redelivery, outages."""

from __future__ import annotations

import asyncpg

from import_service.bootstrap import ImportApp
from import_service.domain.jobs import Job, JobState
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from tests.integration.importer.importer_support import (
    Connector,
    FakeIdentity,
    eventually,
    job_header,
    student_rows,
    unique,
)


async def completed(app: ImportApp, job_id: str, timeout: float = 20) -> Job:
    async def check() -> Job | None:
        job = await app.store.jobs.get(job_id)
        return job if job is not None and job.state is JobState.COMPLETED else None

    return await eventually(check, timeout=timeout, what=f"job {job_id} COMPLETED")


async def test_protobuf_chunks_complete_with_exact_counts(
    import_app: ImportApp, connector: Connector, fake_identity: FakeIdentity
) -> None:
    school = unique("school")
    header = job_header(school)
    rows = student_rows(250)
    rows[9].username = "fail-10"
    await connector.rows(header, rows, per_message=100)
    await connector.end(header, 250)

    job = await completed(import_app, header.job_id)

    assert job.total_rows == 250 and job.rows_recorded == 250
    assert (job.counts.created, job.counts.failed, job.counts.unchanged) == (249, 1, 0)
    assert job.complete_time is not None and job.complete_time >= job.create_time
    assert all(fake_identity.applied[(header.job_id, n)] == 1 for n in range(1, 251))


async def test_json_one_row_per_message_with_gaps_and_end_first(
    import_app: ImportApp, connector: Connector
) -> None:
    header = job_header(unique("school"), mode=rows_pb.IMPORT_MODE_MANUAL_FILE, sensitive=True)
    rows = [row for row in student_rows(40) if row.row_number % 4]  # gaps: numbers 4, 8, ... absent
    await connector.end(header, len(rows), as_json=True)
    await connector.rows(header, rows, per_message=1, as_json=True)

    job = await completed(import_app, header.job_id)

    assert job.total_rows == 30 and job.counts.created == 30
    assert job.spec.sensitive_fields_update and job.spec.mode.value == "MANUAL_FILE"


async def test_same_student_twice_in_a_job_and_dry_run(import_app: ImportApp, connector: Connector) -> None:
    school = unique("school")
    dry = job_header(school, dry_run=True)
    rows = student_rows(5)
    await connector.rows(dry, rows)
    await connector.end(dry, 5)
    assert (await completed(import_app, dry.job_id)).counts.created == 5

    real = job_header(school)
    await connector.rows(real, rows)
    await connector.end(real, 5)
    assert (await completed(import_app, real.job_id)).counts.created == 5  # the dry run changed nothing


async def test_redelivered_messages_change_nothing(
    import_app: ImportApp, connector: Connector, fake_identity: FakeIdentity, import_db_url: str
) -> None:
    header = job_header(unique("school"))
    rows = student_rows(120)
    for _ in range(2):  # a connector retrying everything, interleaved with the first copies
        await connector.rows(header, rows, per_message=30)
    await connector.end(header, 120)
    first = await completed(import_app, header.job_id)
    acked_before = import_app.ingest.settler.stats.acked

    await connector.rows(header, rows, per_message=30)  # and once more after completion
    await connector.end(header, 120)

    async def settled() -> bool:
        return import_app.ingest.settler.stats.acked >= acked_before + 5

    await eventually(settled, what="the late duplicates acknowledged")
    again = await import_app.store.jobs.get(header.job_id)
    assert again is not None
    assert (again.rows_recorded, again.counts.created) == (120, 120)
    assert again.complete_time == first.complete_time
    assert max(fake_identity.applied[(header.job_id, n)] for n in range(1, 121)) == 1
    conn = await asyncpg.connect(import_db_url)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM row_results WHERE job_id = $1", header.job_id)
    finally:
        await conn.close()
    assert stored == 120


async def test_identity_outage_fails_no_row(
    import_app: ImportApp, connector: Connector, fake_identity: FakeIdentity
) -> None:
    header = job_header(unique("school"))
    fake_identity.down_for(2.5)
    await connector.rows(header, student_rows(300), per_message=50)
    await connector.end(header, 300)

    job = await completed(import_app, header.job_id, timeout=30)

    assert fake_identity.refused_calls > 0
    assert (job.counts.created, job.counts.failed) == (300, 0)


async def test_whole_batch_refusal_fails_every_row_with_the_reason(
    import_app: ImportApp, connector: Connector
) -> None:
    header = job_header("no-such-school")
    await connector.rows(header, student_rows(7))
    await connector.end(header, 7)

    job = await completed(import_app, header.job_id)

    assert job.counts.failed == 7
    page = await import_app.store.results.page(header.job_id, (), 0, 10)
    assert {record.result.reason for record in page} == {"SCHOOL_NOT_FOUND"}


async def test_a_crashing_batch_is_split_not_failed_nor_redelivered(
    import_app: ImportApp, connector: Connector, fake_identity: FakeIdentity
) -> None:
    header = job_header(unique("school"))
    fake_identity.crash_next = 2  # INTERNAL twice: not an outage, so the batch is split and tried again
    await connector.rows(header, student_rows(40), per_message=20)
    await connector.end(header, 40)

    job = await completed(import_app, header.job_id)

    assert fake_identity.crash_next == 0 and import_app.ingest.settler.stats.requeued == 0
    assert (job.counts.created, job.counts.failed) == (40, 0)
