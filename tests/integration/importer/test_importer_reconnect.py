"""Losing the broker connection mid-job: the consumer reconnects, redelivered rows are not
recorded twice, and the job completes with exact counts."""

from __future__ import annotations

from import_service.bootstrap import ImportApp
from import_service.domain.jobs import JobState
from tests.integration.importer.importer_support import (
    AppFactory,
    Connector,
    FakeIdentity,
    eventually,
    job_header,
    student_rows,
    unique,
)


async def _job_state(app: ImportApp, job_id: str) -> tuple[int, JobState | None]:
    job = await app.store.jobs.get(job_id)
    return (0, None) if job is None else (job.rows_recorded, job.state)


async def test_connection_loss_mid_job(
    make_app: AppFactory, connector: Connector, fake_identity: FakeIdentity
) -> None:
    header = job_header(unique("school"))
    fake_identity.delay = 0.2
    async with make_app(import_prefetch=5, import_batch_rows=20) as app:
        await connector.rows(header, student_rows(400), per_message=10)
        await connector.end(header, 400)

        async def started() -> bool:
            return (await _job_state(app, header.job_id))[0] > 0

        await eventually(started, what="a first batch recorded")
        transport = app.connection.transport
        assert transport is not None
        await transport.connection.close(ConnectionResetError("cut by the test"))
        fake_identity.delay = 0.0
        cut_at = (await _job_state(app, header.job_id))[0]

        async def completed() -> bool:
            return (await _job_state(app, header.job_id))[1] is JobState.COMPLETED

        await eventually(completed, timeout=30, what="job completed after the reconnect")
        job = await app.store.jobs.get(header.job_id)

    assert cut_at < 400  # most rows were still in the queue when the connection dropped
    assert job is not None
    assert (job.rows_recorded, job.counts.created, job.counts.unchanged) == (400, 400, 0)
