"""Issue 10's events, import side, on real PostgreSQL and RabbitMQ: a job's move to COMPLETED or
HELD writes its event in the same transaction (the jobs table's trigger), numbered per job; the
import relay publishes them to the events exchange with the job as it was, and CloudEvents headers."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
import asyncpg
import grpc

from import_service.bootstrap import ImportApp, relay_spec
from shared.amqp.topology import Topology, declare_events
from shared.events.publisher import decode
from shared.events.runner import start_relay
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc
from shared.settings import Settings
from tests.integration.importer.importer_support import (
    ADMIN_MD,
    Connector,
    FakeIdentity,
    eventually,
    job_header,
    student_rows,
)


async def _events(import_db_url: str, job_id: str) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(import_db_url)
    try:
        found = await conn.fetch(
            "SELECT type, sequence FROM event_outbox WHERE subject = $1 ORDER BY position", job_id
        )
    finally:
        await conn.close()
    return [(r["type"], r["sequence"]) for r in found]


async def _state(importer: pb_grpc.ImportServiceStub, job_id: str, state: int) -> pb.ImportJob | None:
    try:
        job = await importer.GetImportJob(pb.GetImportJobRequest(job_id=job_id), metadata=ADMIN_MD)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:  # not created yet
            return None
        raise
    return job if job.state == state else None


async def test_completion_and_holds_write_their_events_and_the_relay_publishes_them(
    import_app: ImportApp,
    importer: pb_grpc.ImportServiceStub,
    connector: Connector,
    fake_identity: FakeIdentity,
    import_settings: Settings,
    import_db_url: str,
    amqp_url: str,
) -> None:
    school = str(uuid.uuid4())
    plain = job_header(school)
    await connector.rows(plain, student_rows(3, prefix="ev"))
    await connector.end(plain, 3)
    await eventually(lambda: _state(importer, plain.job_id, pb.IMPORT_JOB_STATE_COMPLETED), what="completed")

    fake_identity.threshold = 10
    try:
        guarded = job_header(school, mode=rows_pb.IMPORT_MODE_MANUAL_FILE, sensitive=True)
        sens = [
            rows_pb.StudentRow(row_number=n, username=f"sens-{n}", email_address=f"s{n}@x.example")
            for n in (1, 2)
        ]
        await connector.rows(guarded, sens)
        await connector.end(guarded, 2)
        await eventually(lambda: _state(importer, guarded.job_id, pb.IMPORT_JOB_STATE_HELD), what="held")
    finally:
        fake_identity.threshold = 0
    await importer.ReleaseImportJob(pb.ReleaseImportJobRequest(job_id=guarded.job_id), metadata=ADMIN_MD)
    await eventually(lambda: _state(importer, guarded.job_id, pb.IMPORT_JOB_STATE_COMPLETED), what="released")

    assert await _events(import_db_url, plain.job_id) == [("import_job.completed", 1)]
    assert await _events(import_db_url, guarded.job_id) == [
        ("import_job.held", 1),
        ("import_job.completed", 2),
    ]

    prefix = f"ev{uuid.uuid4().hex[:8]}"
    settings = import_settings.model_copy(
        update={"amqp_prefix": prefix, "events_content_type": "application/json"}
    )
    connection = await aio_pika.connect_robust(amqp_url)
    received: list[Any] = []
    try:
        channel = await connection.channel()
        exchange = await declare_events(channel, Topology(prefix))
        queue = await channel.declare_queue("", exclusive=True)
        await queue.bind(exchange, routing_key="import_job.*")

        async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received.append(message)
            await message.ack()

        await queue.consume(keep)
        relay = await start_relay(settings, relay_spec(settings), health=False)
        try:
            mine = {plain.job_id, guarded.job_id}

            async def arrived() -> bool:
                return len([m for m in received if decode(m.body, m.content_type).subject in mine]) >= 3

            await eventually(arrived, what="3 events relayed")
        finally:
            await relay.close()
    finally:
        await connection.close()
    events = [(m, decode(m.body, m.content_type)) for m in received]
    events = [(m, e) for m, e in events if e.subject in {plain.job_id, guarded.job_id}]
    assert [(e.subject, e.type, e.sequence) for _, e in events] == [
        (plain.job_id, "import_job.completed", 1),
        (guarded.job_id, "import_job.held", 1),
        (guarded.job_id, "import_job.completed", 2),
    ]
    held = events[1][1]
    assert held.job.job.state == pb.IMPORT_JOB_STATE_HELD and held.job.job.hold.sensitive_changes == 2
    done = events[0][1]
    assert (
        done.job.job.counts.created == 3 and done.job.job.total_rows == 3 and done.job.job.school_id == school
    )
    assert events[2][1].actor_id == ""  # released by the admin client, no person signed in
    message = events[0][0]
    assert message.headers["cloudEvents:source"] == "//rollcall/import"
    assert message.headers["cloudEvents:type"] == "rollcall.import_job.completed"
    assert message.routing_key == "import_job.completed" and message.message_id == done.id
