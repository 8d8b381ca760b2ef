"""Where a row's CPU goes (issue 12, "profile and cut"): CPU time per imported row, per process.

``python -m bench.cpu_per_row [--rows N] [--rows-per-message 100] [--quick]`` runs one P1 job (``--rows``
new students, 100 rows a message; 1 for P2's shape) through both services and reads, before and after it, the CPU time (user + system,
``/proc/PID/stat``) of: the import service, the identity service, the PostgreSQL backends serving
each service's database (found in ``pg_stat_activity`` by database name while the job runs), the
publisher (this process, which reads the CSV and publishes), and the RabbitMQ node (the whole broker:
other work on the machine counts too). Then the same for the P1 baseline (the raw upsert's client and
its backend). CPU time is not wall time: it holds on a busy machine where rows/s do not, so it is
the figure to compare before and after a change. Prints µs of CPU per row for each, the sum, and
the rows/s of both runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import asyncpg

from bench.baseline import upsert_rate
from bench.import_throughput import fresh_job
from bench.stack import PG_URL, Stack, publish_csv, running_stack, wait_completed
from shared import event_loop
from shared.pg import with_database
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

TICK = os.sysconf("SC_CLK_TCK")
BROKER = "RabbitMQ (whole node)"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def broker_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp" and "rabbit" in (
                    entry / "cmdline"
                ).read_text():
                    return int(entry.name)
            except OSError:
                continue
    return None


class Backends:
    """The PostgreSQL backends of some databases, with each one's CPU when first seen."""

    def __init__(self, admin: asyncpg.Connection, databases: dict[str, str]) -> None:
        self._admin, self._databases = admin, databases
        self.first: dict[int, tuple[str, float]] = {}

    async def look(self) -> None:
        rows = await self._admin.fetch(
            "SELECT pid, datname FROM pg_stat_activity WHERE datname = ANY($1::text[])",
            list(self._databases),
        )
        for row in rows:
            self.first.setdefault(row["pid"], (self._databases[row["datname"]], cpu_seconds(row["pid"])))

    def used(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for pid, (name, start) in self.first.items():
            totals[name] = totals.get(name, 0.0) + max(0.0, cpu_seconds(pid) - start)
        return totals


class Tenths:
    """Each process's CPU when the job's done rows cross each tenth of the file (``--tenths``): a
    cost that grows with the job, or with the tables it fills, shows as a rising µs/row."""

    def __init__(self, rows: int, read: Callable[[], dict[str, float]]) -> None:
        self._rows, self._read = rows, read
        self.marks: list[tuple[int, float, dict[str, float]]] = [(0, time.perf_counter(), read())]

    def see(self, done: int) -> None:
        if done >= self._rows * len(self.marks) / 10 and len(self.marks) <= 10:
            self.marks.append((done, time.perf_counter(), self._read()))

    def report(self) -> None:
        names = list(self.marks[-1][2])  # a database's backends may first show up mid-job
        print("by tenths of the job: rows/s, then µs of CPU per row for each process")
        print("  " + " | ".join(["rows", "rows/s", *names]))
        for (rows_a, at_a, cpu_a), (rows_b, at_b, cpu_b) in pairwise(self.marks):
            done = max(1, rows_b - rows_a)
            cells = [f"{(cpu_b.get(n, 0.0) - cpu_a.get(n, 0.0)) / done * 1e6:.1f}" for n in names]
            print(f"  {rows_b:,} | {done / (at_b - at_a):,.0f} | " + " | ".join(cells), flush=True)


async def system_run(
    stack: Stack, rows: int, folder: Path, per_message: int = 100, tenths: bool = False
) -> tuple[float, dict[str, float]]:
    path, spec = await fresh_job(stack, rows, folder)
    admin = await asyncpg.connect(PG_URL)
    backends = Backends(
        admin,
        {
            stack.identity_db: "PostgreSQL (identity's backends)",
            stack.import_db: "PostgreSQL (import's backends)",
        },
    )
    await backends.look()
    pids = stack.pids()
    broker = broker_pid()

    def read_all() -> dict[str, float]:
        """Each process's CPU seconds so far (the PostgreSQL backends': since each was first seen)."""
        now = {
            "import service": cpu_seconds(pids["import"]),
            "identity service": cpu_seconds(pids["identity"]),
            **backends.used(),
        }
        if broker:
            now[BROKER] = cpu_seconds(broker)
        return now

    before = read_all()
    mine = own_cpu()
    by_tenths = Tenths(rows, read_all) if tenths else None
    started = time.perf_counter()
    publishing = asyncio.ensure_future(publish_csv(stack, path, spec, per_message))

    async def look(job: pb.ImportJob) -> None:
        await backends.look()  # a pool may open a connection while the job runs
        if by_tenths is not None:
            c = job.counts
            by_tenths.see(c.created + c.updated + c.unchanged + c.skipped + c.failed)

    if not tenths:
        await publishing
    publisher = own_cpu() - mine
    job = await wait_completed(stack, spec.job_id, every=0.2, seen=look)
    await publishing
    elapsed = time.perf_counter() - started
    if by_tenths is not None:
        by_tenths.report()
    after = read_all()
    used = {name: after[name] - before.get(name, 0.0) for name in after if name != BROKER}
    used["publisher (CLI's publish_file)"] = publisher
    if BROKER in after:
        used[BROKER] = after[BROKER] - before[BROKER]
    await admin.close()
    if job.counts.created != rows:
        raise SystemExit(f"expected {rows} created, job says {job.counts}")
    return rows / elapsed, used


async def baseline_run(stack: Stack, rows: int) -> tuple[float, dict[str, float]]:
    conn = await asyncpg.connect(with_database(PG_URL, stack.identity_db))
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        start_backend, mine = cpu_seconds(backend), own_cpu()
        rate = await upsert_rate(conn, rows)
        # upsert_rate also makes the rows and the table; their share is small beside the upsert's
        return rate, {
            "client (asyncpg executemany)": own_cpu() - mine,
            "PostgreSQL backend": cpu_seconds(backend) - start_backend,
        }
    finally:
        await conn.close()


def report(title: str, rows: int, rate: float, used: dict[str, float]) -> None:
    print(f"{title}: {rate:,.0f} rows/s")
    for name, seconds in used.items():
        print(f"  {name:<40} {seconds / rows * 1e6:8.1f} µs/row")
    print(f"  {'all of it':<40} {sum(used.values()) / rows * 1e6:8.1f} µs/row", flush=True)


async def main(rows: int, per_message: int, tenths: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack() as stack:
            await system_run(stack, min(rows, 10_000), Path(tmp))  # warm-up: pools, caches, JIT of plans
            rate, used = await system_run(stack, rows, Path(tmp), per_message, tenths)
            report(f"end to end, {rows:,} new students, {per_message} rows/message", rows, rate, used)
            base_rate, base_used = await baseline_run(stack, rows)
            report("P1 baseline (raw upsert into a copy of users)", rows, base_rate, base_used)
    total, base_total = sum(used.values()), sum(base_used.values())
    print(f"CPU per row, end to end / baseline: {total / base_total:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rows-per-message", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="3,000 rows: a smoke test of the script")
    parser.add_argument(
        "--tenths",
        action="store_true",
        help="also each process's CPU per row by tenths of the job (the publisher's share then "
        "counts only what it spent before the job's first poll)",
    )
    args, _ = parser.parse_known_args()
    event_loop.run(main(3_000 if args.quick else args.rows, args.rows_per_message, args.tenths))
