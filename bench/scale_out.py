"""The figures of docs/scaling.md: import rate by replica count, memory per process, storage per
imported student, argon2id hashes per second.

``python -m bench.scale_out [--rows 100000] [--layouts 1x1,2x2] [--skip-hash]``

For each layout ``IxC`` (I identity replicas, C import consumers; ``tests/process_stack.py``'s
``replicas``) a fresh stack imports one ``--rows`` file of new students at 100 rows a message
(published as the connector CLI does, ``shared.cli.publishing``), then the same file again as a
second job (every row UNCHANGED: a nightly sync), and prints for each rows/s from the first publish
to the job COMPLETED, each consumer's share of the rows, each identity replica's ApplyStudentRows
calls and every serve process's RSS. For the first layout it prints how much every table of both
databases grew per row of each job (heap + indexes + TOAST, ``pg_total_relation_size``, after
VACUUM ANALYZE). Last, argon2id hashes/s at the service's parameters, one thread and one per CPU.
All on whatever machine runs it: the services, PostgreSQL, RabbitMQ and the publisher share it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from identity_service.domain.passwords import PasswordHasher
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import csv_text, publish_csv, spec_for
from tests.process_stack import IDENTITY, IMPORT, ProcessStack, process_stack, unique

PG_URL = os.environ.get("ROLLCALL_TEST_DATABASE_URL", "postgresql://localhost:5432/postgres")
AMQP_URL = os.environ.get("ROLLCALL_TEST_AMQP_URL", "amqp://guest:guest@localhost:5672/")
ROWS_PER_MESSAGE = 100
SIZES = """SELECT c.relname AS name, pg_total_relation_size(c.oid) AS total,
                  pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 2 DESC"""


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


async def backend_pids(stack: ProcessStack) -> dict[str, list[int]]:
    """The PostgreSQL server processes serving each of the stack's databases."""
    found: dict[str, list[int]] = {}
    for label, db in (("identity", stack.identity_db), ("import", stack.import_db)):
        async with db() as conn:
            found[label] = [
                r["pid"]
                for r in await conn.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
    return found


async def cpu_snapshot(stack: ProcessStack, names: list[str]) -> dict[str, float]:
    """CPU seconds so far of each serve process and of each database's server processes."""
    snapshot = {name: cpu_seconds(stack.services[name].pid) for name in names}
    for label, pids in (await backend_pids(stack)).items():
        snapshot[f"postgres ({label})"] = sum(cpu_seconds(pid) for pid in pids)
    return snapshot


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def sizes(stack: ProcessStack) -> dict[str, tuple[int, int, int]]:
    """(total, heap, indexes) bytes of every table of both databases, by ``database.table``."""
    found: dict[str, tuple[int, int, int]] = {}
    for label, db in (("identity", stack.identity_db), ("import", stack.import_db)):
        async with db() as conn:
            await conn.execute("VACUUM ANALYZE")
            for table in await conn.fetch(SIZES):
                found[f"{label}.{table['name']}"] = (table["total"], table["heap"], table["indexes"])
            total = await conn.fetchval("SELECT pg_database_size(current_database())")
            found[f"{label} database"] = (total, 0, 0)
    return found


def print_growth(
    what: str, before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]], rows: int
) -> None:
    print(f"  storage per row, {what}:")
    for name, (total, heap, indexes) in after.items():
        was = before.get(name, (0, 0, 0))
        grew = total - was[0]
        if grew >= 64 * 1024 or name.endswith("database"):
            detail = f" (heap {(heap - was[1]) / rows:.0f}, indexes {(indexes - was[2]) / rows:.0f})"
            print(f"    {name:<30} {grew / rows:7.0f} B{'' if name.endswith('database') else detail}")


async def one_layout(identity: int, consumers: int, rows: int, measure_sizes: bool) -> None:
    prefix = f"scale_{uuid.uuid4().hex[:6]}"
    quiet = {"ROLLCALL_LOG_LEVEL": "WARNING"}
    replicas = {IDENTITY: identity, IMPORT: consumers}
    async with process_stack(PG_URL, AMQP_URL, prefix, extra_env=quiet, replicas=replicas) as stack:
        school = await stack.identity.CreateSchool(
            ipb.CreateSchoolRequest(name=unique("Scale"), email_domains=["scale.example"]),
            metadata=stack.admin_md,
            timeout=10,
        )
        tag = uuid.uuid4().hex[:6]
        text = csv_text(
            (f"{tag}s{n}", f"{tag}.s{n}@scale.example", "First", f"Last{n}", f"sis-{tag}-{n}")
            for n in range(1, rows + 1)
        )
        names = [*stack.replicas(IMPORT), *stack.replicas(IDENTITY)]
        empty = await sizes(stack) if measure_sizes else {}
        for run, what in enumerate(("new students (all CREATED)", "the same file again (all UNCHANGED)")):
            spec = spec_for(school.id)
            pids = await backend_pids(stack)
            cpu_before = {name: cpu_seconds(stack.services[name].pid) for name in names}
            cpu_before.update(
                {f"postgres ({k})": sum(cpu_seconds(pid) for pid in v) for k, v in pids.items()}
            )
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                await publish_csv(stack, Path(folder), text, spec, rows_per_message=ROWS_PER_MESSAGE)
                published = time.perf_counter() - started
                job = await stack.wait_job(spec.job_id, timeout=max(120.0, rows / 200))
                elapsed = time.perf_counter() - started
            cpu_after = await cpu_snapshot(stack, names)
            counts = (job.counts.created, job.counts.unchanged)
            assert job.state == pb.IMPORT_JOB_STATE_COMPLETED and counts == ((rows, 0), (0, rows))[run], job
            print(
                f"{identity} identity x {consumers} import, {what}: {rows} rows in {elapsed:.1f} s ="
                f" {rows / elapsed:,.0f} rows/s (published in {published:.1f} s)"
            )
            for name in names:
                if name.startswith(IDENTITY):
                    share = (
                        f"{await stack.metric('rollcall_rpc_total', service=name, label='ApplyStudentRows'):.0f}"
                        " ApplyStudentRows calls so far"
                        if name in stack.metrics_ports
                        else "(one replica: no metrics port)"
                    )
                else:
                    share = (
                        f"{await stack.metric('rollcall_import_rows_total', service=name):.0f} rows so far"
                    )
                print(f"  {name:<11} {share}, RSS {rss_mib(stack.services[name].pid):.0f} MiB")
            spent = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
            print(
                f"  CPU: {sum(spent.values()):.1f} s in all ({sum(spent.values()) / rows * 1e6:.0f} µs a row): "
                + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in spent.items())
            )
            if measure_sizes:
                now = await sizes(stack)
                print_growth(what, empty, now, rows)
                empty = now


def hash_rates() -> None:
    hasher = PasswordHasher()
    hasher.hash("warm up the allocator")
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(10):
        hasher.hash("correct horse battery staple")
    one, cpu_ms = 10 / (time.perf_counter() - started), (time.process_time() - cpu) * 100
    cpus = os.cpu_count() or 1
    with ThreadPoolExecutor(cpus) as pool:
        started = time.perf_counter()
        list(pool.map(lambda _: hasher.hash("correct horse battery staple"), range(10 * cpus)))
        many = 10 * cpus / (time.perf_counter() - started)
    print(
        f"argon2id (m=64 MiB, t=3, p=4): {cpu_ms:.0f} ms of CPU a hash; {one:.1f} hashes/s on one thread,"
        f" {many:.1f}/s on {cpus} threads"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--layouts", default="1x1,2x2", help="IxC,...: identity replicas x import consumers")
    parser.add_argument("--skip-hash", action="store_true")
    args = parser.parse_args()
    for n, layout in enumerate(args.layouts.split(",")):
        identity, consumers = (int(part) for part in layout.split("x"))
        await one_layout(identity, consumers, args.rows, measure_sizes=n == 0)
    if not args.skip_hash:
        hash_rates()


if __name__ == "__main__":
    asyncio.run(main())
