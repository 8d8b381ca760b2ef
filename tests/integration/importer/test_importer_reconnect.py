"""Losing the broker connection mid-job: the consumer reconnects, redelivered rows are not
recorded twice, and the job completes with exact counts."""

from __future__ import annotations

import aio_pika

from import_service.bootstrap import ImportApp
from import_service.domain.jobs import JobState
from shared.amqp.topology import Topology
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


async def test_consumer_cancelled_by_the_broker_subscribes_again(
    make_app: AppFactory,
    connector: Connector,
    fake_identity: FakeIdentity,
    broker: aio_pika.abc.AbstractConnection,
    import_topology: Topology,
) -> None:
    """The rows queue deleted under the consumer (the broker sends basic.cancel): the service
    subscribes again by itself — its channel declares the queue and its binding again — and takes
    the next job."""
    async with make_app() as app:
        first = job_header(unique("school"))
        await connector.rows(first, student_rows(50), per_message=10)
        await connector.end(first, 50)

        async def done(job_id: str) -> bool:
            return (await _job_state(app, job_id))[1] is JobState.COMPLETED

        async def consumers() -> int:
            probe = await broker.channel()
            try:
                queue = await probe.declare_queue(import_topology.rows_queue, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return 0  # not declared again yet (the failed passive declare closed the probe)
            await probe.close()
            return queue.declaration_result.consumer_count or 0

        await eventually(lambda: done(first.job_id), what="the first job completed")
        channel = await broker.channel()
        await channel.queue_delete(import_topology.rows_queue, if_unused=False, if_empty=False)
        await channel.close()
        await eventually(consumers, timeout=30, what="the service consuming the queue again")
        second = job_header(unique("school"))
        await connector.rows(second, student_rows(50), per_message=10)
        await connector.end(second, 50)
        await eventually(lambda: done(second.job_id), timeout=30, what="the second job completed")
