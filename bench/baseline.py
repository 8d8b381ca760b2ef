"""The P1 baseline shared by the benchmarks (operations.md): a raw asyncpg ``executemany`` upsert,
500-row transactions, of the same rows into a table with the users table's columns **and all its
indexes** — the honest floor, since every student an import creates pays for each of them.

The table is made with ``CREATE TABLE … (LIKE users INCLUDING ALL)`` in a migrated identity database,
so it has exactly the users table's columns, defaults, checks, unique and exclusion constraints and
indexes (the trigram GIN index, the lookalike GiST exclusion, the name and local-part lookups, the
pending queue) whatever later migrations add; only foreign keys and triggers are not copied. The
rows carry the stored keys computed by identity's own ``identity_keys`` (one definition), outside the
timed part: the floor is the database's work and one round trip per 500 rows, nothing else."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import asyncpg

from identity_service.domain.identity_keys import EmailIdentity, auth_identifier_key, username_key
from identity_service.domain.ids import new_id

BASELINE_TABLE = "bench_users"
UPSERT = """
INSERT INTO bench_users (id, user_type, status, school_id, username, email, first_name, last_name,
        auth_identifier, origin, email_key, email_skeleton, email_plain, username_key, auth_identifier_key)
VALUES ($1, 'STUDENT', 'ACTIVE', $2, $3, $4, $5, $6, $7, 'STUDENT_FILE', $8, $9, $10, $11, $12)
ON CONFLICT (email_key) DO UPDATE SET first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    version = bench_users.version + 1, update_time = now()
"""
TRANSACTION_ROWS = 500


def student(n: int, domain: str) -> tuple[str, str, str, str, str]:
    return (f"s{n:07d}", f"s{n:07d}@{domain}", f"Given{n}", f"Family{n}", f"sis-{n:07d}")


def baseline_rows(school_id: uuid.UUID, rows: int, domain: str = "baseline.edu") -> list[tuple[object, ...]]:
    """The upsert's parameters for students 1..``rows`` (the benchmarks' rows), keys included."""
    data: list[tuple[object, ...]] = []
    for n in range(1, rows + 1):
        username, email, first, last, auth = student(n, domain)
        identity = EmailIdentity.of(email)
        data.append(
            (
                new_id(),  # identity's own id maker, as the system's created students get
                school_id,
                username,
                email,
                first,
                last,
                auth,
                identity.key,
                identity.skeleton,
                identity.plain,
                username_key(username),
                auth_identifier_key(auth),
            )
        )
    return data


async def upsert_rate(conn: asyncpg.Connection, rows: int) -> float:
    """Rows/s of the raw upsert of ``rows`` students into a fresh copy of ``conn``'s users table
    (``conn`` is on a migrated identity database; the copy is dropped afterwards)."""
    await conn.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
    await conn.execute(f"CREATE TABLE {BASELINE_TABLE} (LIKE users INCLUDING ALL)")
    try:
        copied, users = await index_names(conn, BASELINE_TABLE), await index_names(conn, "users")
        if len(copied) != len(users):
            raise RuntimeError(f"the baseline table has {len(copied)} indexes, users has {len(users)}")
        return await timed_upsert(conn, baseline_rows(uuid.uuid4(), rows))
    finally:
        await conn.execute(f"DROP TABLE {BASELINE_TABLE}")


async def timed_upsert(
    conn: asyncpg.Connection, data: list[tuple[object, ...]], after: Callable[[int], None] | None = None
) -> float:
    """Rows/s of the upsert of ``data`` into the baseline table in ``TRANSACTION_ROWS``-row
    transactions (the timed part of every floor made of it); ``after`` is told the rows done after
    each transaction."""
    started = time.perf_counter()
    for start in range(0, len(data), TRANSACTION_ROWS):
        async with conn.transaction():
            await conn.executemany(UPSERT, data[start : start + TRANSACTION_ROWS])
        if after is not None:
            after(min(start + TRANSACTION_ROWS, len(data)))
    return len(data) / (time.perf_counter() - started)


async def index_names(conn: asyncpg.Connection, table: str) -> list[str]:
    """The indexes of ``table`` (the bench prints the baseline's, so a reader sees it has them all)."""
    rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname", table)
    return [r["indexname"] for r in rows]
