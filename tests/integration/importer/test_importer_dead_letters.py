"""Undecodable and off-contract messages land in the dead-letter queue with the reason."""

from __future__ import annotations

from typing import Any

import aio_pika
import asyncpg

from import_service.bootstrap import ImportApp
from import_service.domain.jobs import JobState
from shared.amqp.topology import Topology
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.integration.importer.importer_support import (
    Connector,
    eventually,
    job_header,
    student_rows,
    unique,
)

REASON = "x-rollcall-dead-reason"


async def _dead_letters(
    broker: aio_pika.abc.AbstractConnection, topology: Topology, wanted: set[str]
) -> dict[str, Any]:
    """The dead-queue copies of the messages ``wanted`` (by message id), acknowledged once read."""
    channel = await broker.channel()
    queue = await channel.get_queue(topology.dead_queue)
    found: dict[str, Any] = {}

    async def drain() -> bool:
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            if message.message_id in wanted:
                found[message.message_id] = message
                await message.ack()
            else:
                await message.nack(requeue=True)
                break
        return wanted <= found.keys()

    await eventually(drain, what=f"dead letters {sorted(wanted - found.keys())}")
    await channel.close()
    return found


def _with_rows(header: pb.ImportMessage, rows: list[rows_pb.StudentRow]) -> pb.ImportMessage:
    message = pb.ImportMessage()
    message.CopyFrom(header)
    message.rows.rows.extend(rows)
    return message


async def test_bad_messages_are_dead_lettered_with_reasons(
    import_app: ImportApp,
    connector: Connector,
    broker: aio_pika.abc.AbstractConnection,
    import_topology: Topology,
    import_db_url: str,
) -> None:
    school = unique("school")
    header = job_header(school)
    await connector.rows(header, student_rows(10))
    sent = {
        "UNDECODABLE": await connector.raw(
            b"\xff\x00garbage", content_type="application/x-protobuf", routing_key=f"rows.{school}"
        ),
        "UNKNOWN_CONTENT_TYPE": await connector.raw(
            header.SerializeToString(), content_type="text/csv", routing_key=f"rows.{school}"
        ),
        "SCHOOL_MISMATCH": await connector.send(
            _with_rows(header, student_rows(1, start=11)), routing_school=unique("other")
        ),
        "TOO_MANY_ROWS": await connector.send(_with_rows(header, student_rows(1001, start=12))),
        "INVALID_ROW_NUMBER": await connector.send(_with_rows(header, student_rows(1, start=0))),
        "NO_ROWS": await connector.send(_with_rows(header, [])),
    }
    bad_json = b'{"jobId": "' + header.job_id.encode() + b'", "surprise": 1}'
    sent["UNDECODABLE_JSON"] = await connector.raw(
        bad_json, content_type="application/json", routing_key=f"rows.{school}"
    )
    await connector.end(header, 10)

    letters = await _dead_letters(broker, import_topology, set(sent.values()))

    for reason, message_id in sent.items():
        headers = letters[message_id].headers
        assert headers[REASON] == reason.removesuffix("_JSON"), (reason, headers)
        assert headers["x-rollcall-routing-key"].startswith("rows.")

    async def complete_with_dead_letters() -> bool:
        job = await import_app.store.jobs.get(header.job_id)
        # counted on the job: the refusals whose job id could be read (the bad JSON names its job too),
        # routed to the job's own school: SCHOOL_MISMATCH went to another school's routing key
        return job is not None and job.state is JobState.COMPLETED and job.dead_lettered == 4

    await eventually(complete_with_dead_letters, what="job complete, 4 dead letters counted")
    conn = await asyncpg.connect(import_db_url)
    try:
        reasons = await conn.fetch(
            "SELECT reason, body_bytes, length(body) AS kept FROM dead_letters WHERE message_id = ANY($1)",
            list(sent.values()),
        )
    finally:
        await conn.close()
    assert len(reasons) == len(sent)
    assert all(rec["kept"] <= 64 * 1024 for rec in reasons)


async def test_a_job_mismatch_is_dead_lettered(
    import_app: ImportApp,
    connector: Connector,
    broker: aio_pika.abc.AbstractConnection,
    import_topology: Topology,
) -> None:
    school = unique("school")
    header = job_header(school)
    await connector.rows(header, student_rows(3))
    await eventually(lambda: import_app.store.jobs.get(header.job_id), what="job created")
    other_mode = job_header(school, job_id=header.job_id, mode=rows_pb.IMPORT_MODE_MANUAL_FILE)
    message_id = await connector.send(_with_rows(other_mode, student_rows(1, start=4)))

    letters = await _dead_letters(broker, import_topology, {message_id})

    assert letters[message_id].headers[REASON] == "JOB_MISMATCH"

    async def counted() -> bool:
        job = await import_app.store.jobs.get(header.job_id)
        return job is not None and job.dead_lettered == 1

    await eventually(counted, what="dead letter counted on the job")
