"""The P1 baseline shared by the benchmarks: a raw asyncpg ``executemany`` upsert, 500-row
transactions, into a table of the users table's shape, and the rows every benchmark uses."""

from __future__ import annotations

import time
import uuid

import asyncpg

BASELINE_TABLE = """
CREATE TABLE bench_users (
    id uuid PRIMARY KEY, user_type text NOT NULL, status text NOT NULL, school_id uuid,
    username text, email text NOT NULL, first_name text NOT NULL, last_name text NOT NULL,
    auth_identifier text NOT NULL, origin text NOT NULL, file_updates_disabled boolean NOT NULL DEFAULT false,
    create_time timestamptz NOT NULL DEFAULT now(), update_time timestamptz NOT NULL DEFAULT now(),
    version bigint NOT NULL DEFAULT 1);
CREATE UNIQUE INDEX bench_users_email ON bench_users (lower(email));
CREATE UNIQUE INDEX bench_users_username ON bench_users (school_id, lower(username));
"""
UPSERT = """
INSERT INTO bench_users (id, user_type, status, school_id, username, email, first_name, last_name,
                         auth_identifier, origin)
VALUES ($1, 'STUDENT', 'ACTIVE', $2, $3, $4, $5, $6, $7, 'STUDENT_FILE')
ON CONFLICT (lower(email)) DO UPDATE SET first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    version = bench_users.version + 1, update_time = now()
"""


def student(n: int, domain: str) -> tuple[str, str, str, str, str]:
    return (f"s{n:07d}", f"s{n:07d}@{domain}", f"Given{n}", f"Family{n}", f"sis-{n:07d}")


async def upsert_rate(conn: asyncpg.Connection, rows: int) -> float:
    """Rows/s of the raw upsert of ``rows`` students (creates the table on ``conn``'s database)."""
    await conn.execute(BASELINE_TABLE)
    school = uuid.uuid4()
    data = [(uuid.uuid4(), school, *student(n, "baseline.edu")) for n in range(1, rows + 1)]
    started = time.perf_counter()
    for start in range(0, rows, 500):
        async with conn.transaction():
            await conn.executemany(UPSERT, data[start : start + 500])
    return rows / (time.perf_counter() - started)
