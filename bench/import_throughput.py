"""P1 and P2 (operations.md): end-to-end import rate against baselines measured in the same run.

P1: a file published 100 rows a message, rows/s from first publish to job COMPLETED, against a raw
    asyncpg ``executemany`` upsert (500-row transactions) of the same rows into a table of the
    users table's shape.                                         target ≥ 0.25
P2: the same file one row a message, against raw aio-pika consume+ack of the same messages on a
    quorum queue.                                                target ≥ 0.5

``python -m bench.import_throughput [--rows N] [--only p1|p2]`` — prints each ratio last.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import asyncpg
import grpc

from bench.baseline import student, upsert_rate
from bench.stack import PG_URL, Stack, running_stack
from import_service.domain.jobs import ImportMode, JobSpec
from import_service.domain.rows import FileFormat, FileRow
from shared.amqp.messages import PROTOBUF, encode_rows
from shared.cli.publishing import publish_file
from shared.pg import with_database
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as igrpc
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pgrpc


def write_file(folder: Path, rows: int, domain: str) -> Path:
    path = folder / f"{domain}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["username", "email_address", "first_name", "last_name", "auth_identifier"])
        writer.writerows(student(n, domain) for n in range(1, rows + 1))
    return path


async def baseline_upsert(stack: Stack, rows: int) -> float:
    conn = await asyncpg.connect(with_database(PG_URL, stack.identity_db))
    try:
        return await upsert_rate(conn, rows)
    finally:
        await conn.close()


async def baseline_consume_ack(stack: Stack, rows: int) -> float:
    spec = JobSpec("baseline", "00000000-0000-0000-0000-000000000000", ImportMode.ONGOING_SYNC)
    bodies = [encode_rows(spec, (FileRow(n, *student(n, "baseline.edu")),)) for n in range(1, rows + 1)]
    connection = await aio_pika.connect_robust(stack.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            f"{stack.prefix}.baseline", durable=True, arguments={"x-queue-type": "quorum"}
        )
        window = asyncio.Semaphore(256)

        async def publish(body: bytes) -> None:
            async with window:
                message = aio_pika.Message(
                    body, content_type=PROTOBUF, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                )
                await channel.default_exchange.publish(message, routing_key=queue.name)

        await asyncio.gather(*(publish(b) for b in bodies))
        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=2000)
        consumed = await consumer_channel.get_queue(queue.name)
        done = asyncio.Event()
        count = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count
            await message.ack()
            count += 1
            if count == rows:
                done.set()

        started = time.perf_counter()
        await consumed.consume(on_message)
        await done.wait()
        elapsed = time.perf_counter() - started
        await channel.queue_delete(queue.name, if_unused=False, if_empty=False)
        return rows / elapsed


async def end_to_end(stack: Stack, rows: int, per_message: int, folder: Path) -> float:
    domain = f"{uuid.uuid4().hex[:8]}.edu"
    path = write_file(folder, rows, domain)
    async with grpc.aio.insecure_channel(stack.identity_addr) as channel:
        school = await igrpc.IdentityServiceStub(channel).CreateSchool(
            ipb.CreateSchoolRequest(name=f"Bench {domain}", email_domains=[domain]), metadata=stack.metadata()
        )
    spec = JobSpec(str(uuid.uuid4()), school.id, ImportMode.ONGOING_SYNC, source_name=path.name)
    started = time.perf_counter()
    await publish_file(
        path,
        spec,
        file_format=FileFormat.CSV,
        rows_per_message=per_message,
        amqp_url=stack.amqp_url,
        prefix=stack.prefix,
    )
    async with grpc.aio.insecure_channel(stack.import_addr) as channel:
        stub = pgrpc.ImportServiceStub(channel)
        while True:
            job = await stub.GetImportJob(
                pb.GetImportJobRequest(job_id=spec.job_id), metadata=stack.metadata()
            )
            if job.state == pb.IMPORT_JOB_STATE_COMPLETED:
                break
            await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    if job.counts.created != rows:
        raise SystemExit(f"expected {rows} created, job says {job.counts}")
    return rows / elapsed


async def main(rows: int, only: str | None, identity_replicas: int) -> None:
    results: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(identity_replicas=identity_replicas) as stack:
            if only in (None, "p1"):
                base = await baseline_upsert(stack, rows)
                e2e = await end_to_end(stack, rows, 100, Path(tmp))
                print(
                    f"P1 raw executemany upsert: {base:,.0f} rows/s; end-to-end 100 rows/message: {e2e:,.0f} rows/s"
                )
                results.append(f"P1 ratio {e2e / base:.2f} (target >= 0.25)")
            if only in (None, "p2"):
                base = await baseline_consume_ack(stack, rows)
                e2e = await end_to_end(stack, rows, 1, Path(tmp))
                print(
                    f"P2 raw aio-pika consume+ack: {base:,.0f} msg/s; end-to-end 1 row/message: {e2e:,.0f} rows/s"
                )
                results.append(f"P2 ratio {e2e / base:.2f} (target >= 0.5)")
    for line in results:
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", choices=["p1", "p2"])
    parser.add_argument("--identity-replicas", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.rows:,} rows, {args.identity_replicas} identity replica(s)")
    asyncio.run(main(args.rows, args.only, args.identity_replicas))
