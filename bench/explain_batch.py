"""EXPLAIN (ANALYZE, BUFFERS) of identity's ApplyStudentRows statements (issue 12, "profile and cut").

``python -m bench.explain_batch [--seed 100000] [--batch 1000]`` makes a scratch identity database,
seeds a school with ``--seed`` students through ``apply_student_rows`` (1000-row batches, as the
import service sends them), then applies two more batches of ``--batch`` rows on a connection with
``auto_explain`` loaded (``log_analyze``, ``log_buffers``, every statement, plans sent to this client
as notices): one of new students (every row CREATED) and the same rows again as a later job (every
row UNCHANGED). For each statement of each batch it prints the execution time, the rows and the
shared buffers hit/read/dirtied of the plan's top node, the statement's first line, and the plan
with ``--plans``. Times are the server's, so they hold on a busy machine better than rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.apply_rows_bench import scratch_database
from bench.baseline import student
from identity_service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from identity_service.domain.student_file import ImportMode, IncomingRow
from identity_service.service.student_file import RowBatchRequest, apply_student_rows

DATABASE = "rollcall_bench_explain"
EXPLAIN_SETTINGS = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_buffers = on",
    "SET auto_explain.log_timing = on",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_format = json",
    "SET auto_explain.log_level = notice",
    "SET client_min_messages = notice",
)


def batch_request(school_id: str, job_id: str, job_time: datetime, first: int, count: int) -> RowBatchRequest:
    rows = [IncomingRow(n, *student(n, "explain.edu")) for n in range(first, first + count)]
    return RowBatchRequest(school_id, job_id, job_time, ImportMode.ONGOING_SYNC, False, False, rows)


async def explained(url: str, request: RowBatchRequest) -> list[dict[str, Any]]:
    """The plans of every statement one ``apply_student_rows`` call runs (one connection)."""
    plans: list[dict[str, Any]] = []

    def on_notice(_: object, message: asyncpg.PostgresLogMessage) -> None:
        text = message.message or ""
        if text.startswith("duration:"):
            plans.append(json.loads(text.split("plan:", 1)[1]))

    async def setup(conn: asyncpg.Connection) -> None:
        for statement in EXPLAIN_SETTINGS:
            await conn.execute(statement)
        conn.add_log_listener(on_notice)

    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, init=setup)
    assert pool is not None
    try:
        with warnings.catch_warnings():  # the listener stays on the pool's one connection on purpose
            warnings.simplefilter("ignore", asyncpg.InterfaceWarning)
            await apply_student_rows(functools.partial(PostgresUnitOfWork, pool), request, "bench")
    finally:
        await pool.close()
    return plans


def report(title: str, plans: list[dict[str, Any]], show_plans: bool) -> None:
    """One line per distinct statement (a statement run per row, such as a foreign key's check, is
    summed over its runs); asyncpg's own type introspection is left out."""
    print(f"== {title}")
    lines: dict[str, list[float]] = {}
    total, count = 0.0, 0
    for entry in plans:
        query = " ".join((entry.get("Query Text") or "").split())
        if "typeinfo_tree" in query or "set_config('jit'" in query or "current_setting('jit')" in query:
            continue
        plan = entry["Plan"]
        ms = float(entry.get("Execution Time", plan.get("Actual Total Time", 0.0)))
        total, count = total + ms, count + 1
        line = lines.setdefault(query[:100], [0, 0.0, 0, 0, 0, 0])
        line[0] += 1
        line[1] += ms
        line[2] += plan.get("Actual Rows", 0)
        line[3] += plan.get("Shared Hit Blocks", 0)
        line[4] += plan.get("Shared Read Blocks", 0)
        line[5] += plan.get("Shared Dirtied Blocks", 0)
        if show_plans:
            print(json.dumps(plan, indent=1)[:4000])
    for query, (runs, ms, rows, hit, read, dirtied) in lines.items():
        print(
            f"{ms:9.2f} ms  x{runs:<5} rows {rows:>6}  hit {hit:>6}  read {read:>5}  dirtied {dirtied:>5}"
            f"  {query[:80]}"
        )
    print(f"{total:9.2f} ms  in {count} statements")


async def hot_updates(url: str) -> str:
    """The users table's updates so far and how many were HOT (no index entry written)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        row = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'users'"
        )
    finally:
        await conn.close()
    assert row is not None
    return f"users: {row['n_tup_upd']} updates, {row['n_tup_hot_upd']} of them HOT"


async def main(seed: int, batch: int, show_plans: bool, fillfactor: int | None) -> None:
    url = await scratch_database(DATABASE)
    school_id = str(uuid.uuid4())
    conn = await asyncpg.connect(url)
    await conn.execute("INSERT INTO schools (id, name) VALUES ($1, 'Explain U')", school_id)
    if fillfactor is not None:
        await conn.execute(f"ALTER TABLE users SET (fillfactor = {int(fillfactor)})")
    await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    assert pool is not None
    now = datetime.now(UTC)
    seed_job = f"seed-{uuid.uuid4().hex[:8]}"
    try:
        factory = functools.partial(PostgresUnitOfWork, pool)
        for first in range(1, seed + 1, 1000):
            count = min(1000, seed + 1 - first)
            await apply_student_rows(factory, batch_request(school_id, seed_job, now, first, count), "bench")
        await pool.execute("ANALYZE")
    finally:
        await pool.close()
    print(f"{seed:,} students seeded; batches of {batch} rows")
    job = f"explain-{uuid.uuid4().hex[:8]}"
    created = await explained(url, batch_request(school_id, job, now, seed + 1, batch))
    report(f"a batch of {batch} new students (CREATED)", created, show_plans)
    later = f"explain-{uuid.uuid4().hex[:8]}"
    again = await explained(url, batch_request(school_id, later, now + timedelta(minutes=1), seed + 1, batch))
    report(f"the same {batch} rows as a later job (UNCHANGED)", again, show_plans)
    print(await hot_updates(url))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--plans", action="store_true", help="print each statement's plan too")
    parser.add_argument("--fillfactor", type=int, help="the users table's fillfactor before seeding")
    parser.add_argument("--quick", action="store_true", help="seed 2,000, batches of 200: a smoke test")
    args, _ = parser.parse_known_args()
    if args.quick:
        args.seed, args.batch = 2_000, 200
    asyncio.run(main(args.seed, args.batch, args.plans, args.fillfactor))
