"""What each of the users table's indexes costs a created student (issue 12: "does search need the
trigram index to be maintained in the same transaction?").

``python -m bench.index_costs [--rows 50000]`` runs P1's baseline — the raw ``executemany`` upsert,
500-row transactions, into ``CREATE TABLE … (LIKE users INCLUDING ALL)`` — with all the indexes, then
without the trigram GIN index, without the lookalike GiST exclusion, without both, and with only the
unique keys, on a scratch copy of a migrated identity database; prints rows/s of each and its ratio
to the full table. Dropping an index from users drops it from P1's baseline too (the baseline is a
copy of users), so these figures say what a created student pays, not how to move P1's ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import asyncpg

from bench.apply_rows_bench import scratch_database
from bench.baseline import BASELINE_TABLE, TRANSACTION_ROWS, baseline_rows, timed_upsert
from bench.cpu_per_row import cpu_seconds

VARIANTS: list[tuple[str, tuple[str, ...]]] = [
    ("all the users table's indexes", ()),
    ("without the trigram GIN index", ("gin_trgm_ops",)),
    ("without the lookalike GiST exclusion", ("EXCLUDE",)),
    ("without both", ("gin_trgm_ops", "EXCLUDE")),
    ("unique keys only", ("gin_trgm_ops", "EXCLUDE", "local_part", "users_school_name", "pending_queue")),
]


async def rate(conn: asyncpg.Connection, rows: int, drop: tuple[str, ...], tenths: bool = False) -> float:
    await conn.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
    await conn.execute(f"CREATE TABLE {BASELINE_TABLE} (LIKE users INCLUDING ALL)")
    for name, kind in await conn.fetch(
        "SELECT conname, contype FROM pg_constraint WHERE conrelid = $1::regclass", BASELINE_TABLE
    ):
        if kind == "x" and "EXCLUDE" in drop:
            await conn.execute(f'ALTER TABLE {BASELINE_TABLE} DROP CONSTRAINT "{name}"')
    for name, definition in await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1", BASELINE_TABLE
    ):
        if any(part != "EXCLUDE" and (part in definition or part in name) for part in drop):
            await conn.execute(f'DROP INDEX "{name}"')
    data = baseline_rows(uuid.uuid4(), rows)
    report = Tenths(rows, await conn.fetchval("SELECT pg_backend_pid()")) if tenths else None
    measured = await timed_upsert(conn, data, report)
    await conn.execute(f"DROP TABLE {BASELINE_TABLE}")
    return measured


class Tenths:
    """Told the rows done after each transaction, prints rows/s and the backend's CPU a row over
    each tenth of the rows (``--tenths``)."""

    def __init__(self, rows: int, backend: int) -> None:
        self._rows, self._backend = rows, backend
        self._tenth = max(TRANSACTION_ROWS, rows // 10)
        self._done, self._at, self._cpu = 0, time.perf_counter(), cpu_seconds(backend)

    def __call__(self, done: int) -> None:
        if done - self._done < self._tenth and done < self._rows:
            return
        now, cpu, part = time.perf_counter(), cpu_seconds(self._backend), done - self._done
        print(
            f"    up to {done:>9,} rows: {part / (now - self._at):8,.0f} rows/s, "
            f"backend {(cpu - self._cpu) / part * 1e6:6.1f} µs of CPU a row",
            flush=True,
        )
        self._done, self._at, self._cpu = done, now, cpu


async def main(rows: int, tenths: bool, only: list[str] | None) -> None:
    conn = await asyncpg.connect(await scratch_database())
    try:
        full = 0.0
        for title, drop in VARIANTS:
            if only is not None and not any(word in title for word in only):
                continue
            if tenths:
                print(f"{title}:", flush=True)
            measured = await rate(conn, rows, drop, tenths)
            if not drop:
                full = measured  # the first variant: every index (skipped by --only, no ratio is printed)
            versus = f"  {measured / full:.2f} x the full table" if full else ""
            print(f"{title:<40} {measured:8,.0f} rows/s{versus}", flush=True)
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="2,000 rows: a smoke test")
    parser.add_argument(
        "--tenths",
        action="store_true",
        help="print rows/s and the backend's CPU a row by tenths of the rows: how each variant's cost "
        "grows with the table (P5)",
    )
    parser.add_argument(
        "--only", help="comma-separated words: run only the variants whose title holds one (e.g. all,trigram)"
    )
    args, _ = parser.parse_known_args()
    asyncio.run(
        main(2_000 if args.quick else args.rows, args.tenths, args.only.split(",") if args.only else None)
    )
