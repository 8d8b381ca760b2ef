"""Issue 7, import side, against real RabbitMQ and PostgreSQL: who may publish, distinct-row totals,
a job id belonging to one school, bad text refused on its first delivery, poison batches split."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
import grpc
import pytest

from import_service.bootstrap import ImportApp
from import_service.domain.jobs import Job, JobState
from shared.amqp.topology import Topology
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as ipb_grpc
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.integration.importer.importer_support import (
    AppFactory,
    Connector,
    eventually,
    job_header,
    student_rows,
)
from tests.integration.importer.test_importer_dead_letters import REASON, _dead_letters, _with_rows


def school() -> str:
    return str(uuid.uuid4())


async def _completed(app: ImportApp, job_id: str) -> Job:
    async def check() -> Job | None:
        job = await app.store.jobs.get(job_id)
        return job if job is not None and job.state is JobState.COMPLETED else None

    return await eventually(check, what=f"job {job_id} COMPLETED")


async def _letter_rows(import_db_url: str, message_ids: list[str]) -> list[Any]:
    conn = await asyncpg.connect(import_db_url)
    try:
        return list(
            await conn.fetch(
                "SELECT message_id, reason, job_id, school_id FROM dead_letters WHERE message_id = ANY($1)",
                message_ids,
            )
        )
    finally:
        await conn.close()


async def test_a_message_without_user_id_is_refused_and_creates_nothing(
    import_app: ImportApp,
    connector: Connector,
    broker: aio_pika.abc.AbstractConnection,
    import_topology: Topology,
    import_db_url: str,
) -> None:
    header = job_header(school())
    body = _with_rows(header, student_rows(3)).SerializeToString()
    anonymous = await connector.raw(
        body, content_type="application/x-protobuf", routing_key=f"rows.{header.school_id}", user_id=None
    )

    letters = await _dead_letters(broker, import_topology, {anonymous})

    assert letters[anonymous].headers[REASON] == "CONNECTOR_NOT_ALLOWED"
    assert await import_app.store.jobs.get(header.job_id) is None
    [row] = await _letter_rows(import_db_url, [anonymous])
    assert (row["reason"], row["school_id"]) == ("CONNECTOR_NOT_ALLOWED", None)


async def test_nul_text_is_dead_lettered_with_a_reason_on_its_first_delivery(
    import_app: ImportApp,
    connector: Connector,
    broker: aio_pika.abc.AbstractConnection,
    import_topology: Topology,
    import_db_url: str,
) -> None:
    header = job_header(school())
    header.source_name = "students\x00.csv"
    nul_source = await connector.send(_with_rows(header, student_rows(2)))
    job_id_nul = job_header(header.school_id)
    job_id_nul.job_id = "job\x00one"
    nul_job_id = await connector.send(_with_rows(job_id_nul, student_rows(2)))
    # a NUL inside a row is that row's problem (identity: FAILED INVALID_ROW), not the message's
    clean = job_header(header.school_id)
    rows = student_rows(2)
    rows[1].extra["co\x00hort"] = "2026"
    rows[0].last_name = "Lee\x00"
    await connector.send(_with_rows(clean, rows))

    letters = await _dead_letters(broker, import_topology, {nul_source, nul_job_id})

    for message_id, reason, field in (
        (nul_source, "INVALID_TEXT", "source_name"),
        (nul_job_id, "INVALID_JOB_ID", "job_id"),
    ):
        headers = letters[message_id].headers
        assert headers[REASON] == reason
        assert str(headers["x-rollcall-dead-detail"]).startswith(field)
        assert "x-death" not in headers  # refused by the service at once, not given up on by the broker
    assert await import_app.store.jobs.get(header.job_id) is None
    assert len(await _letter_rows(import_db_url, [nul_source, nul_job_id])) == 2

    async def recorded() -> bool:
        job = await import_app.store.jobs.get(clean.job_id)
        return job is not None and job.rows_recorded == 2

    await eventually(recorded, what="both rows of the message with NULs inside rows recorded")


async def test_an_upper_case_school_id_files_no_job(
    import_app: ImportApp,
    connector: Connector,
    broker: aio_pika.abc.AbstractConnection,
    import_topology: Topology,
) -> None:
    header = job_header(school().upper())
    upper = await connector.send(_with_rows(header, student_rows(1)))
    lower_id = job_header(header.school_id.lower())
    mixed = await connector.send(_with_rows(lower_id, student_rows(1)), routing_school=header.school_id)

    letters = await _dead_letters(broker, import_topology, {upper, mixed})

    assert letters[upper].headers[REASON] == "INVALID_SCHOOL_ID"
    assert letters[mixed].headers[REASON] == "SCHOOL_MISMATCH"
    assert await import_app.store.jobs.get(header.job_id) is None
    assert await import_app.store.jobs.get(lower_id.job_id) is None


async def test_total_rows_counts_distinct_rows_and_contradictions_are_job_mismatch(
    import_app: ImportApp,
    connector: Connector,
    broker: aio_pika.abc.AbstractConnection,
    import_topology: Topology,
) -> None:
    header = job_header(school())
    rows = student_rows(5)
    await connector.rows(header, rows, per_message=2)
    await connector.rows(header, rows, per_message=5)  # a connector re-sending everything
    await connector.end(header, 5)
    first = await _completed(import_app, header.job_id)
    assert (first.total_rows, first.rows_recorded, first.counts.created) == (5, 5, 5)

    past_total = await connector.send(_with_rows(header, student_rows(1, start=6)))
    end_message = pb.ImportMessage()
    end_message.CopyFrom(header)
    end_message.end.total_rows = 6
    other_total = await connector.send(end_message)
    end_message.end.total_rows = 5
    await connector.send(end_message)  # the same end again: harmless

    letters = await _dead_letters(broker, import_topology, {past_total, other_total})

    assert letters[past_total].headers[REASON] == "JOB_MISMATCH"
    assert letters[other_total].headers[REASON] == "JOB_MISMATCH"

    async def counted() -> Job | None:
        job = await import_app.store.jobs.get(header.job_id)
        return job if job is not None and job.dead_lettered == 2 else None

    job = await eventually(counted, what="two JOB_MISMATCH letters counted on the job")
    assert (job.total_rows, job.rows_recorded, job.complete_time) == (5, 5, first.complete_time)


async def test_an_end_below_the_rows_already_there_is_refused_and_a_right_one_completes(
    import_app: ImportApp,
    connector: Connector,
    broker: aio_pika.abc.AbstractConnection,
    import_topology: Topology,
) -> None:
    header = job_header(school())
    await connector.rows(header, student_rows(4))

    async def recorded() -> bool:
        job = await import_app.store.jobs.get(header.job_id)
        return job is not None and job.rows_recorded == 4

    await eventually(recorded, what="4 rows recorded")
    end_message = pb.ImportMessage()
    end_message.CopyFrom(header)
    end_message.end.total_rows = 3
    too_few = await connector.send(end_message)
    letters = await _dead_letters(broker, import_topology, {too_few})
    assert letters[too_few].headers[REASON] == "JOB_MISMATCH"

    await connector.end(header, 4)
    assert (await _completed(import_app, header.job_id)).total_rows == 4


async def test_another_schools_reuse_of_a_job_id_is_not_counted_on_that_job(
    import_app: ImportApp,
    connector: Connector,
    broker: aio_pika.abc.AbstractConnection,
    import_topology: Topology,
    import_db_url: str,
) -> None:
    mine = job_header(school())
    await connector.rows(mine, student_rows(3))
    await connector.end(mine, 3)
    await _completed(import_app, mine.job_id)

    intruder = job_header(school(), job_id=mine.job_id)
    reused = await connector.send(_with_rows(intruder, student_rows(2, start=4)))
    bad_body = await connector.raw(  # names A's job id, routed to B
        b'{"jobId": "' + mine.job_id.encode() + b'", "nope": 1}',
        content_type="application/json",
        routing_key=f"rows.{intruder.school_id}",
    )

    letters = await _dead_letters(broker, import_topology, {reused, bad_body})

    assert letters[reused].headers[REASON] == "JOB_MISMATCH"
    job = await import_app.store.jobs.get(mine.job_id)
    assert job is not None
    assert (job.spec.school_id, job.rows_recorded, job.dead_lettered) == (mine.school_id, 3, 0)
    schools = {row["school_id"] for row in await _letter_rows(import_db_url, [reused, bad_body])}
    assert schools == {intruder.school_id}


# --- a poison row meeting an identity that fails in a way it cannot absorb ----------------------------


class PoisonIdentity(ipb_grpc.IdentityServiceServicer):
    """Answers INTERNAL (with internal-looking text) for any batch holding a username starting with
    "poison", CREATED for the others: what a crash inside identity on one row looks like."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    async def ApplyStudentRows(self, request: Any, context: Any) -> ipb.ApplyStudentRowsResponse:
        self.batch_sizes.append(len(request.rows))
        if any(row.username.startswith("poison") for row in request.rows):
            await context.abort(grpc.StatusCode.INTERNAL, 'ERROR: trigger "poison" at users line 3')
        return ipb.ApplyStudentRowsResponse(
            results=[
                rows_pb.RowResult(
                    row_number=row.row_number, outcome=rows_pb.ROW_OUTCOME_CREATED, user_id=str(uuid.uuid4())
                )
                for row in request.rows
            ]
        )


@pytest.fixture
async def poison_identity() -> AsyncIterator[tuple[PoisonIdentity, int]]:
    fake = PoisonIdentity()
    server = grpc.aio.server()
    ipb_grpc.add_IdentityServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, port
    await server.stop(0)


async def test_a_poison_row_is_isolated_failed_and_the_job_and_other_schools_flow(
    make_app: AppFactory, connector: Connector, poison_identity: tuple[PoisonIdentity, int]
) -> None:
    fake, port = poison_identity
    async with make_app(identity_addr=f"127.0.0.1:{port}", import_batches_in_flight=1) as app:
        header = job_header(school())
        rows = student_rows(200)
        for number in (17, 150):
            rows[number - 1].username = f"poison-{number}"
        await connector.rows(header, rows, per_message=50)
        await connector.end(header, 200)
        other = job_header(school())
        await connector.rows(other, student_rows(30))
        await connector.end(other, 30)

        job = await _completed(app, header.job_id)
        assert (await _completed(app, other.job_id)).counts.created == 30

        assert (job.counts.created, job.counts.failed) == (198, 2)
        failed = await app.store.results.page(header.job_id, (), 0, 500)
        refused = {r.result.row_number: r.result for r in failed if r.result.reason}
        assert sorted(refused) == [17, 150]
        assert {r.reason for r in refused.values()} == {"IDENTITY_REFUSED"}
        assert {r.message for r in refused.values()} == {"identity refused this row (INTERNAL)"}
        assert app.ingest.settler.stats.requeued == 0 and app.ingest.settler.stats.dead_lettered == 0
        assert len(fake.batch_sizes) < 60  # split, not one call per row
