"""A graceful stop mid-job (SIGTERM) leaves what is not done for the next consumer."""

from __future__ import annotations

import time

from import_service.bootstrap import ImportApp
from import_service.domain.jobs import Job, JobState
from tests.integration.importer.importer_support import (
    AppFactory,
    Connector,
    FakeIdentity,
    eventually,
    job_header,
    student_rows,
    unique,
)


async def _job(app: ImportApp, job_id: str) -> Job:
    job = await app.store.jobs.get(job_id)
    assert job is not None
    return job


async def test_close_mid_job_then_restart_completes_with_exact_counts(
    make_app: AppFactory, connector: Connector, fake_identity: FakeIdentity
) -> None:
    header = job_header(unique("school"))
    fake_identity.delay = 0.4
    async with make_app(import_prefetch=10, import_batch_rows=50, grace=0.1) as first:
        await connector.rows(header, student_rows(600), per_message=10)
        await connector.end(header, 600)

        async def some_recorded() -> bool:
            job = await first.store.jobs.get(header.job_id)
            return job is not None and job.rows_recorded > 0

        await eventually(some_recorded, what="a first batch recorded")
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 2.0  # the grace period bounds the stop
    fake_identity.delay = 0.0

    async with make_app() as second:
        stopped_at = await _job(second, header.job_id)
        assert 0 < stopped_at.rows_recorded < 600
        assert stopped_at.state is JobState.RECEIVING

        async def done() -> bool:
            return (await _job(second, header.job_id)).state is JobState.COMPLETED

        await eventually(done, what="job completed by the second consumer")
        job = await _job(second, header.job_id)

    assert (job.rows_recorded, job.counts.created, job.counts.unchanged, job.counts.failed) == (
        600,
        600,
        0,
        0,
    )


async def test_close_finishes_running_batches_and_acks_them(
    make_app: AppFactory, connector: Connector, fake_identity: FakeIdentity
) -> None:
    header = job_header(unique("school"))
    fake_identity.delay = 0.3
    async with make_app(import_batch_rows=20) as app:
        await connector.rows(header, student_rows(20), per_message=20)

        async def received() -> bool:
            return app.ingest.settler.in_flight > 0

        await eventually(received, what="the message received")
    # close() waited for the running batch: its row outcomes are recorded and the message acked
    assert app.ingest.settler.stats.acked >= 1
    assert app.ingest.settler.in_flight == 0
    async with make_app(consume=False) as reader:
        assert (await _job(reader, header.job_id)).rows_recorded == 20
