"""F3 and F4 (operations.md, "Reliability targets"): the broker and the database restart mid-job.

F3: RabbitMQ's application is stopped and started (``rabbitmqctl stop_app`` / ``start_app``) while
a connector is still publishing a 20k-row file and the import service is consuming it. The
connector publishes with confirms and publishes again what was not confirmed (same message ids),
so it rides through the restart; the import service reconnects by itself. F4: PostgreSQL (both
services' databases) is stopped under load and started again; both services report NOT_SERVING
while it is away and SERVING again by themselves, and the job completes.

Both use this machine's broker and database, so they stop them for every client (other test
runs included) for a few seconds; the broker and the database are always started again (finally).
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest

from shared.pg import with_database
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import new_campus
from tests.faults.fault_support import (
    CuttableLink,
    HealthWatch,
    PatientPublisher,
    broker_restored,
    broker_start,
    broker_stop,
    check_exactly_once,
    job_under_way,
    pg_cluster,
    plan_file,
    postgres,
    postgres_restored,
    publish_all,
    rabbitmqctl_available,
)
from tests.infra import LOCAL_AMQP, LOCAL_PG
from tests.process_stack import (
    IDENTITY,
    IMPORT,
    NOT_SERVING,
    SERVING,
    ProcessStack,
    eventually,
    process_stack,
)

pytestmark = pytest.mark.faults
IDENTITY_DB_OUTAGE_SECONDS = 60.0


async def test_f3_rabbitmq_restarted_mid_job_loses_nothing_and_applies_nothing_twice(
    fault_stack: ProcessStack, amqp_url: str
) -> None:
    if amqp_url != LOCAL_AMQP or not rabbitmqctl_available():
        pytest.skip("F3 restarts the local RabbitMQ with rabbitmqctl; this broker is not one it controls")
    stack = fault_stack
    campus = await new_campus(stack)
    planned = await plan_file(stack, campus, 20_000)
    messages = planned.messages(per_message=100)
    publisher = PatientPublisher(stack.amqp_url, stack.exchange)

    async def trickle() -> None:
        """A connector sending the file over a few seconds (so the restart lands in the middle)."""
        deadline = time.monotonic() + 240
        for number, message in enumerate(messages):
            await publisher.publish(message, f"{planned.job_id}-{number}", deadline)
            await asyncio.sleep(0.03)

    async with broker_restored(amqp_url):
        publishing = asyncio.create_task(trickle())
        try:

            async def under_way() -> bool:
                job = await stack.get_job(planned.job_id)
                return publisher.published >= 60 and job is not None and job.rows_received > 0

            await eventually(under_way, timeout=60, what="publishing and consuming under way")
            await broker_stop()
            published_before = publisher.published
            await stack.wait_health(IMPORT, NOT_SERVING, timeout=30)
            await broker_start(amqp_url)
            await stack.wait_health(IMPORT, SERVING, timeout=90)
            await asyncio.wait_for(asyncio.shield(publishing), timeout=240)
        finally:
            if not publishing.done():
                publishing.cancel()
            await publisher.close()

    assert published_before < len(messages), "the restart came after the whole file was published"
    assert publisher.retries > 0, "the publisher never met the restart"
    assert stack.services[IMPORT].starts == 1  # the consumer reconnected by itself
    await stack.wait_job(planned.job_id, timeout=180)
    await check_exactly_once(stack, planned, campus.id)


async def test_f4_postgresql_restarted_under_load_services_recover_by_themselves(
    fault_stack: ProcessStack, pg_server_url: str
) -> None:
    if pg_server_url != LOCAL_PG or pg_cluster() is None:
        pytest.skip("F4 restarts the local PostgreSQL cluster with pg_ctlcluster; this one is not local")
    stack = fault_stack
    campus = await new_campus(stack)
    planned, messages = await job_under_way(stack, campus)
    watch = HealthWatch(stack, (IDENTITY, IMPORT))
    await watch(SERVING)  # the first reading is taken before the fault (as F8): the assertion's states[0]

    async with postgres_restored(pg_server_url):
        await postgres("stop")  # the restart in two steps, so that the NOT_SERVING phase is seen
        await publish_all(stack, messages[40:])  # the broker still takes the rest of the file
        await eventually(lambda: watch(NOT_SERVING), timeout=30, what="both services NOT_SERVING")
        await postgres("start")
        await eventually(lambda: watch(SERVING), timeout=90, what="both services SERVING again")

    for name, states in watch.seen.items():
        assert states[0] == SERVING and NOT_SERVING in states and states[-1] == SERVING, (name, states)
        assert stack.services[name].starts == 1 and stack.services[name].running  # no restart needed
    await stack.wait_job(planned.job_id, timeout=180)
    await check_exactly_once(stack, planned, campus.id)


async def test_f4_identitys_database_unreachable_for_a_minute_rows_wait_and_none_is_lost(
    pg_server_url: str, amqp_url: str, amqp_prefix: str
) -> None:
    """PostgreSQL restarted for ONE service: identity's database host unreachable for 60 s (its
    connections cut, new ones refused) while the import service's database stays up, as when the
    two run on different servers. Rows must wait for identity (product.md: "an outage is never a
    row failure") - not be returned to the queue until its delivery limit dead-letters them."""
    parts = urlsplit(pg_server_url)
    link = CuttableLink(parts.hostname or "127.0.0.1", parts.port or 5432)
    await link.start()
    prefix = f"{amqp_prefix}_f4b"
    userinfo = parts.netloc.rpartition("@")[0]
    through_link = f"{userinfo}@127.0.0.1:{link.port}" if userinfo else f"127.0.0.1:{link.port}"
    identity_url = with_database(urlunsplit(parts._replace(netloc=through_link)), f"{prefix}_identity")
    try:
        async with process_stack(
            pg_server_url, amqp_url, prefix, extra_env={"ROLLCALL_IDENTITY_DATABASE_URL": identity_url}
        ) as stack:
            campus = await new_campus(stack)
            planned = await plan_file(stack, campus, 1_500, existing=20)
            messages = planned.messages(per_message=100)
            await publish_all(stack, messages[:5])
            await stack.wait_job(planned.job_id, until=lambda job: job.rows_received >= 500)
            await link.cut()
            identity_health: set[int | None] = set()
            try:
                cut_at = time.monotonic()
                await publish_all(stack, messages[5:])
                while (elapsed := time.monotonic() - cut_at) < IDENTITY_DB_OUTAGE_SECONDS:
                    dead = await _queue_depth(stack, stack.dead_queue)
                    assert dead == 0, (
                        f"{dead} messages dead-lettered by the broker after {elapsed:.0f}s of identity's "
                        "database outage (x-first-death-reason delivery_limit): the rows were returned to "
                        "the queue over and over instead of waiting; the job can never complete"
                    )
                    job = await stack.get_job(planned.job_id)
                    assert job is not None and job.state == pb.IMPORT_JOB_STATE_RECEIVING  # the rows wait
                    identity_health.add(await stack.health(IDENTITY))
                    assert await stack.health(IMPORT) == SERVING  # its own database is fine
                    await asyncio.sleep(2.0)  # the outage's length is the deliberate wait; watched meanwhile
            finally:
                await link.restore()
            assert NOT_SERVING in identity_health  # identity's readiness saw its database go
            await stack.wait_job(planned.job_id, timeout=120)
            await check_exactly_once(stack, planned, campus.id)
    finally:
        await link.cut()


async def _queue_depth(stack: ProcessStack, queue: str) -> int:
    connection = await aio_pika.connect(stack.amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()
