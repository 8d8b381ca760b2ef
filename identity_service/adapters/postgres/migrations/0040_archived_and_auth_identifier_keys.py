"""Issue 9: the ARCHIVED status, and auth identifiers unique per school by their key.

- ``users.status`` may be ``ARCHIVED`` (students only: ``users_status_by_type`` keeps staff and
  employers ACTIVE); a recorded row outcome may be ``ARCHIVED`` (an explicit status=archived row).
- ``users.auth_identifier_key``: ``identity_keys.auth_identifier_key`` of the auth identifier (the
  SSO subject), NULL when blank; unique per school (``users_school_auth_identifier_key``, partial:
  where not NULL). The old ``lower(auth_identifier)`` index goes: PostgreSQL's lower() never decides
  whether two identities are one.

Existing users of one school that already share an auth identifier key (two students whose
identifiers differed only in letter case, say) are REPORTED, not refused and not dropped: the
migration goes on, leaves those users' key NULL (so none of them signs in by SSO and none blocks
the index), and records their ids in ``auth_identifier_duplicates`` (ids and the time found, never
the identifiers), logging one line per group. docs/runbook.md "Duplicate auth identifiers" says how
staff resolve them and how the key is then filled.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from identity_service.domain.identity_keys import auth_identifier_key
from shared.logging import get_logger

log = get_logger("migration.0040")

_CHUNK = 5000

_SCHEMA = """
ALTER TABLE users DROP CONSTRAINT users_status_check;
ALTER TABLE users ADD CONSTRAINT users_status_check
    CHECK (status IN ('PENDING', 'ACTIVE', 'DECLINED', 'ARCHIVED'));
ALTER TABLE import_row_outcomes DROP CONSTRAINT import_row_outcomes_outcome_check;
ALTER TABLE import_row_outcomes ADD CONSTRAINT import_row_outcomes_outcome_check
    CHECK (outcome IN ('CREATED', 'UPDATED', 'UNCHANGED', 'SKIPPED', 'FAILED', 'ARCHIVED'));
ALTER TABLE users ADD COLUMN auth_identifier_key text;
CREATE TABLE auth_identifier_duplicates (
    user_id    uuid NOT NULL PRIMARY KEY,
    school_id  uuid,
    group_no   integer NOT NULL,
    found_at   timestamptz NOT NULL DEFAULT now()
);
"""

_FILL = """UPDATE users u SET auth_identifier_key = v.key
    FROM unnest($1::uuid[], $2::text[]) AS v(id, key) WHERE u.id = v.id"""

_SHARED = """SELECT school_id, array_agg(id ORDER BY id) AS ids FROM users
    WHERE auth_identifier_key IS NOT NULL
    GROUP BY school_id, auth_identifier_key HAVING count(*) > 1 ORDER BY min(id::text)"""

_REPORT = """INSERT INTO auth_identifier_duplicates (user_id, school_id, group_no)
    SELECT unnest($1::uuid[]), $2, $3"""

_CONSTRAINTS = """
UPDATE users SET auth_identifier_key = NULL
    WHERE id IN (SELECT user_id FROM auth_identifier_duplicates);
ALTER TABLE users ADD CONSTRAINT users_auth_identifier_key_blank
    CHECK (auth_identifier_key IS NULL OR auth_identifier <> '');
DROP INDEX IF EXISTS users_school_auth_identifier;
CREATE UNIQUE INDEX users_school_auth_identifier_key ON users (school_id, auth_identifier_key)
    WHERE auth_identifier_key IS NOT NULL;
"""


async def apply(conn: asyncpg.Connection) -> None:
    await conn.execute(_SCHEMA)
    await _fill(conn)
    for number, row in enumerate(await conn.fetch(_SHARED), start=1):
        await conn.execute(_REPORT, row["ids"], row["school_id"], number)
        log.warning(
            "migration.auth_identifier_duplicates",
            school_id=str(row["school_id"]),
            user_ids=[str(user_id) for user_id in row["ids"]],
            see="docs/runbook.md 'Duplicate auth identifiers'",
        )
    await conn.execute(_CONSTRAINTS)


async def _fill(conn: asyncpg.Connection) -> None:
    chunk: list[Any] = []
    query = "SELECT id, auth_identifier FROM users WHERE auth_identifier <> ''"
    async for row in conn.cursor(query, prefetch=_CHUNK):
        chunk.append(row)
        if len(chunk) == _CHUNK:
            await _write(conn, chunk)
            chunk = []
    if chunk:
        await _write(conn, chunk)


async def _write(conn: asyncpg.Connection, rows: list[Any]) -> None:
    await conn.execute(
        _FILL, [row["id"] for row in rows], [auth_identifier_key(row["auth_identifier"]) for row in rows]
    )
