"""Identity's side of P1 alone: apply_student_rows against a raw asyncpg upsert, in one run.

``python bench/apply_rows_bench.py [--rows 100000] [--concurrency 4]`` makes a scratch database (``rollcall_bench_rows``,
dropped and created), migrates it, then measures

(a) the baseline of operations.md P1: asyncpg ``executemany`` upsert of the rows into a table of the
    users table's shape, 500-row transactions;
(b) ``apply_student_rows`` over the same rows in 1000-row batches, 4 in flight as the import service
    sends them (every row CREATED);
(c) the same rows again as a later job (every row UNCHANGED; the import marks move);

and prints rows/s of each, the ratio of (b) to (a) last. No gRPC, no queue: the whole import must
reach 0.25 × the baseline, so identity's share has to be well above that.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import functools  # noqa: E402

from bench.baseline import student, upsert_rate  # noqa: E402
from identity_service.adapters.postgres.unit_of_work import PostgresUnitOfWork  # noqa: E402
from identity_service.domain.student_file import ImportMode, IncomingRow, RowOutcome  # noqa: E402
from identity_service.service.student_file import RowBatchRequest, apply_student_rows  # noqa: E402
from shared.pg import migrate, with_database  # noqa: E402

SERVER_URL = os.environ.get("ROLLCALL_BENCH_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")
DATABASE = "rollcall_bench_rows"
MIGRATIONS = ROOT / "identity_service/adapters/postgres/migrations"


async def scratch_database(name: str = DATABASE) -> str:
    """A migrated identity database ``name``, dropped first if it was there; returns its URL."""
    admin = await asyncpg.connect(SERVER_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(SERVER_URL, name)
    await migrate(url, MIGRATIONS, 7_001)
    return url


async def baseline(url: str, rows: int) -> float:
    conn = await asyncpg.connect(url)
    try:
        return await upsert_rate(conn, rows)
    finally:
        await conn.close()


async def apply_all(
    pool: asyncpg.Pool, school_id: str, rows: int, job_time: datetime, concurrency: int
) -> tuple[float, set[RowOutcome]]:
    """The rows as one job, 1000-row batches, ``concurrency`` batches in flight (as the import service)."""
    factory = functools.partial(PostgresUnitOfWork, pool)
    job_id = f"bench-{uuid.uuid4().hex[:8]}"
    outcomes: set[RowOutcome] = set()
    slots = asyncio.Semaphore(concurrency)

    async def one(start: int) -> None:
        batch = [IncomingRow(n, *student(n, "bench.edu")) for n in range(start, min(start + 1000, rows + 1))]
        request = RowBatchRequest(school_id, job_id, job_time, ImportMode.ONGOING_SYNC, False, False, batch)
        async with slots:
            outcomes.update(r.outcome for r in await apply_student_rows(factory, request, "bench"))

    started = time.perf_counter()
    await asyncio.gather(*(one(start) for start in range(1, rows + 1, 1000)))
    return rows / (time.perf_counter() - started), outcomes


async def main(rows: int, concurrency: int) -> None:
    url = await scratch_database()
    raw = await baseline(url, rows)
    print(f"(a) baseline executemany upsert, 500-row transactions: {raw:,.0f} rows/s", flush=True)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=concurrency)
    assert pool is not None
    try:
        school_id = str(uuid.uuid4())
        await pool.execute("INSERT INTO schools (id, name) VALUES ($1, 'Bench U')", school_id)
        now = datetime.now(UTC)
        created, first = await apply_all(pool, school_id, rows, now, concurrency)
        print(f"(b) apply_student_rows, {_names(first)}: {created:,.0f} rows/s", flush=True)
        again, second = await apply_all(pool, school_id, rows, now + timedelta(minutes=1), concurrency)
        print(f"(c) apply_student_rows again, {_names(second)}: {again:,.0f} rows/s", flush=True)
        print(f"ratio (c) unchanged / (a) baseline: {again / raw:.2f}")
        print(f"ratio (b) created / (a) baseline: {created / raw:.2f}")
    finally:
        await pool.close()


def _names(outcomes: set[RowOutcome]) -> str:
    return "/".join(sorted(outcomes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight (import default: 4)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.concurrency))
