"""Identity keys in their own columns (product.md Additions "Identity keys, one definition").

Until now emails were unique by ``lower(email)`` and usernames by ``lower(username)``: PostgreSQL's
lower-casing, which Python's disagrees with (``İ``, final sigma, ``ß`` ...). The keys are computed by
``identity_service.domain.identity_keys`` and stored: ``email_key``, ``email_skeleton`` and
``email_plain`` (the lookalike rule) and ``username_key``; the unique indexes move onto them and keep
their names (the service maps them to EMAIL_TAKEN / USERNAME_TAKEN).

Lookalikes are guarded by the database too: non-plain addresses have distinct skeletons (a partial
unique index), and a plain address never shares its skeleton with a non-plain one (an exclusion
constraint over a GiST index, btree_gist).

Existing users that would collide under the new keys (two accounts whose addresses differed only in
a way the keys ignore) stop the migration: nothing is changed, and the message names the users' ids
(never their addresses). docs/runbook.md "Identity key collisions" says how to resolve them.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from identity_service.domain.identity_keys import EmailIdentity, email_key, username_key
from shared.pg import MigrationRefused

_CHUNK = 5000

_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE users
    ADD COLUMN email_key text,
    ADD COLUMN email_skeleton text,
    ADD COLUMN email_plain boolean,
    ADD COLUMN username_key text;
-- CHECK (new_email_key = lower(new_email)), named by PostgreSQL in 0010_email_change.sql
ALTER TABLE email_changes DROP CONSTRAINT email_changes_check;
"""

_FILL_USERS = """UPDATE users u SET email_key = v.email_key, email_skeleton = v.skeleton,
        email_plain = v.plain, username_key = v.username_key
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[], $5::text[])
        AS v(id, email_key, skeleton, plain, username_key)
    WHERE u.id = v.id"""

_FILL_CHANGES = """UPDATE email_changes c SET new_email_key = v.key
    FROM unnest($1::uuid[], $2::text[]) AS v(id, key) WHERE c.id = v.id"""

_SAME_EMAIL_KEY = """SELECT array_agg(id::text ORDER BY id) AS ids FROM users
    GROUP BY email_key HAVING count(*) > 1"""
_SAME_USERNAME_KEY = """SELECT array_agg(id::text ORDER BY id) AS ids FROM users
    WHERE username_key IS NOT NULL GROUP BY school_id, username_key HAVING count(*) > 1"""
_LOOKALIKES = """SELECT ARRAY[a.id::text, b.id::text] AS ids FROM users a
    JOIN users b ON b.email_skeleton = a.email_skeleton AND b.email_key <> a.email_key
    WHERE NOT a.email_plain AND (b.email_plain OR a.id < b.id)"""

_CONSTRAINTS = """
ALTER TABLE users
    ALTER COLUMN email_key SET NOT NULL,
    ALTER COLUMN email_skeleton SET NOT NULL,
    ALTER COLUMN email_plain SET NOT NULL,
    ADD CONSTRAINT users_username_key_with_username CHECK ((username IS NULL) = (username_key IS NULL));
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (email_key);
DROP INDEX users_school_username_key;
CREATE UNIQUE INDEX users_school_username_key ON users (school_id, username_key)
    WHERE username_key IS NOT NULL;
CREATE UNIQUE INDEX users_email_lookalike ON users (email_skeleton) WHERE NOT email_plain;
ALTER TABLE users ADD CONSTRAINT users_email_lookalike_mixed
    EXCLUDE USING gist (email_skeleton WITH =, email_plain WITH <>);
"""


async def apply(conn: asyncpg.Connection) -> None:
    await conn.execute(_SCHEMA)
    await _fill_users(conn)
    await _fill_email_changes(conn)
    problems = [
        *await _groups(conn, _SAME_EMAIL_KEY, "share one email key"),
        *await _groups(conn, _SAME_USERNAME_KEY, "share one username key at their school"),
        *await _groups(conn, _LOOKALIKES, "have lookalike email addresses"),
    ]
    if problems:
        raise MigrationRefused(
            "existing users would collide under the new identity keys — "
            + "; ".join(problems)
            + ". Resolve each group (docs/runbook.md 'Identity key collisions'), then migrate again."
        )
    await conn.execute(_CONSTRAINTS)


async def _fill_users(conn: asyncpg.Connection) -> None:
    chunk: list[Any] = []
    async for row in conn.cursor("SELECT id, email, username FROM users", prefetch=_CHUNK):
        chunk.append(row)
        if len(chunk) == _CHUNK:
            await _write_user_keys(conn, chunk)
            chunk = []
    if chunk:
        await _write_user_keys(conn, chunk)


async def _write_user_keys(conn: asyncpg.Connection, rows: list[Any]) -> None:
    identities = [EmailIdentity.of(row["email"]) for row in rows]
    await conn.execute(
        _FILL_USERS,
        [row["id"] for row in rows],
        [i.key for i in identities],
        [i.skeleton for i in identities],
        [i.plain for i in identities],
        [None if row["username"] is None else username_key(row["username"]) for row in rows],
    )


async def _fill_email_changes(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch("SELECT id, new_email FROM email_changes")
    if rows:
        await conn.execute(
            _FILL_CHANGES, [row["id"] for row in rows], [email_key(row["new_email"]) for row in rows]
        )


async def _groups(conn: asyncpg.Connection, query: str, what: str) -> list[str]:
    return [f"users {', '.join(row['ids'])} {what}" for row in await conn.fetch(query)]
