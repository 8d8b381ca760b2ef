"""P1 and P2 (operations.md): end-to-end import rate against baselines measured in the same run.

P1: a file published 100 rows a message, rows/s from first publish to job COMPLETED, against a raw
    asyncpg ``executemany`` upsert (500-row transactions) of the same rows into a table with the
    users table's columns and all its indexes (bench/baseline.py).   target ≥ 0.6
P2: the same file one row a message, against raw aio-pika consume+ack of the same messages on a
    quorum queue.                                                target ≥ 0.6

``python -m bench.import_throughput [--rows N] [--only p1|p2] [--quick]`` — prints each baseline's
absolute figure, the system's, and the ratios last. ``--quick`` (5,000 rows) is CI's smoke test of the
script, not a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import asyncpg
import grpc

from bench.baseline import student, upsert_rate
from bench.stack import PG_URL, Stack, publish_csv, running_stack, wait_completed
from import_service.domain.jobs import ImportMode, JobSpec
from import_service.domain.rows import FileRow
from shared import event_loop
from shared.amqp.messages import PROTOBUF, encode_rows
from shared.amqp.topology import Topology, declare, delete
from shared.pg import with_database
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as igrpc


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


class BareConsumer:
    """The floor's consumer: raw aio-pika, prefetch 2000, each message acknowledged on its own;
    ``done`` is set once ``expected`` messages are in."""

    def __init__(self, expected: int) -> None:
        self.expected, self.count, self.done = expected, 0, asyncio.Event()
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag = ""

    async def start(self, connection: aio_pika.abc.AbstractConnection, queue_name: str) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2000)
        self._queue = await channel.get_queue(queue_name)
        self._tag = await self._queue.consume(self._on_message)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        self.count += 1
        if self.count == self.expected:
            self.done.set()

    async def stop(self) -> None:
        assert self._queue is not None
        await self._queue.cancel(self._tag)


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
        consumer = BareConsumer(rows)
        started = time.perf_counter()
        await consumer.start(connection, queue.name)
        await consumer.done.wait()
        elapsed = time.perf_counter() - started
        await consumer.stop()
        await channel.queue_delete(queue.name, if_unused=False, if_empty=False)
        return rows / elapsed


async def amqp_ceiling(stack: Stack, rows: int, folder: Path) -> float:
    """Rows/s of P2's AMQP work alone: the same file published one row a message by the CLI's
    publisher while a bare aio-pika consumer acknowledges each message, at once, on a queue declared
    as the rows queue is — no services. End to end can go no faster on this machine, whatever the
    services cost."""
    topology = Topology(f"{stack.prefix}-ceiling")
    domain = f"{uuid.uuid4().hex[:8]}.edu"
    path = write_file(folder, rows, domain)
    spec = JobSpec(str(uuid.uuid4()), str(uuid.uuid4()), ImportMode.ONGOING_SYNC, source_name=path.name)
    connection = await aio_pika.connect_robust(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        await declare(channel, topology)
        consumer = BareConsumer(rows + 1)  # the rows and the end message
        await consumer.start(connection, topology.rows_queue)
        started = time.perf_counter()
        await publish_csv(stack, path, spec, 1, prefix=topology.prefix)
        await consumer.done.wait()
        elapsed = time.perf_counter() - started
        await consumer.stop()
        await delete(channel, topology)
    return rows / elapsed


async def fresh_job(stack: Stack, rows: int, folder: Path) -> tuple[Path, JobSpec]:
    """A new school, a file of ``rows`` new students of its domain, and an ONGOING_SYNC job for it."""
    domain = f"{uuid.uuid4().hex[:8]}.edu"
    path = write_file(folder, rows, domain)
    async with grpc.aio.insecure_channel(stack.identity_addr) as channel:
        school = await igrpc.IdentityServiceStub(channel).CreateSchool(
            ipb.CreateSchoolRequest(name=f"Bench {domain}", email_domains=[domain]), metadata=stack.metadata()
        )
    return path, JobSpec(str(uuid.uuid4()), school.id, ImportMode.ONGOING_SYNC, source_name=path.name)


async def end_to_end(stack: Stack, rows: int, per_message: int, folder: Path) -> float:
    path, spec = await fresh_job(stack, rows, folder)
    started = time.perf_counter()
    await publish_csv(stack, path, spec, per_message)
    job = await wait_completed(stack, spec.job_id)
    elapsed = time.perf_counter() - started
    if job.counts.created != rows:
        raise SystemExit(f"expected {rows} created, job says {job.counts}")
    return rows / elapsed


async def bracketed(
    baseline: Callable[[], Awaitable[float]], system: Awaitable[float]
) -> tuple[float, float, float]:
    """(baseline before, system, baseline after): the machine is shared and its load drifts, so the
    system's run is bracketed by two runs of its baseline and compared with their mean."""
    before = await baseline()
    measured = await system
    return before, measured, await baseline()


async def main(rows: int, only: str | None, identity_replicas: int) -> None:
    results: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(identity_replicas=identity_replicas) as stack:
            await end_to_end(stack, min(rows, 5_000), 100, Path(tmp))  # warm-up: pools, plans, caches
            if only in (None, "p1"):
                first, e2e, second = await bracketed(
                    lambda: baseline_upsert(stack, rows), end_to_end(stack, rows, 100, Path(tmp))
                )
                base = (first + second) / 2
                print(
                    "P1 baseline: raw executemany upsert into a copy of users (all its indexes):"
                    f" {base:,.0f} rows/s (before {first:,.0f}, after {second:,.0f})"
                )
                print(f"P1 system: end to end, 100 rows/message: {e2e:,.0f} rows/s", flush=True)
                results.append(f"P1 ratio {e2e / base:.2f} (target >= 0.6)")
            if only in (None, "p2"):
                first, e2e, second = await bracketed(
                    lambda: baseline_consume_ack(stack, rows), end_to_end(stack, rows, 1, Path(tmp))
                )
                base = (first + second) / 2
                print(
                    f"P2 baseline: raw aio-pika consume+ack, quorum queue: {base:,.0f} msg/s"
                    f" (before {first:,.0f}, after {second:,.0f})"
                )
                print(f"P2 system: end to end, 1 row/message: {e2e:,.0f} rows/s", flush=True)
                ceiling = await amqp_ceiling(stack, rows, Path(tmp))
                print(
                    f"P2 ceiling: the CLI publishing while a bare consumer acks, no services: {ceiling:,.0f}"
                    f" rows/s = {ceiling / base:.2f} x the baseline (end to end is {e2e / ceiling:.2f} of it)",
                    flush=True,
                )
                results.append(f"P2 ratio {e2e / base:.2f} (target >= 0.6)")
    for line in results:
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", choices=["p1", "p2"])
    parser.add_argument("--identity-replicas", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="5,000 rows: a smoke test of the script")
    args, _ = parser.parse_known_args()  # run_all passes every bench the same arguments
    if args.quick:
        args.rows = 5_000
    print(f"{args.rows:,} rows, {args.identity_replicas} identity replica(s)")
    event_loop.run(main(args.rows, args.only, args.identity_replicas))  # the CLI's loop (uvloop)
