"""Migration 0040 on a database written before auth identifiers were unique: it backfills every key
with identity's own function, and where users of one school already share one it REPORTS them (ids
in auth_identifier_duplicates and a log line) and leaves their key NULL instead of failing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from identity_service.adapters.postgres import MIGRATION_LOCK_KEY, MIGRATIONS
from identity_service.domain.identity_keys import EmailIdentity, auth_identifier_key, username_key
from shared.pg import migrate
from tests.integration.identity_keys.migration_support import migrated_up_to


@pytest.fixture
async def before_0040(pg_server_url: str, tmp_path: Path) -> AsyncIterator[str]:
    async with migrated_up_to(pg_server_url, tmp_path / "before", "00[0-3][0-9]_*") as url:
        yield url


async def _add(conn: asyncpg.Connection, school: uuid.UUID, username: str, auth: str) -> str:
    user_id = uuid.uuid4()
    email = f"{username}@old.edu"
    identity = EmailIdentity.of(email)
    await conn.execute(
        """INSERT INTO users (id, user_type, status, school_id, username, email, origin, auth_identifier,
               email_key, email_skeleton, email_plain, username_key)
           VALUES ($1, 'STUDENT', 'ACTIVE', $2, $3, $4, 'STUDENT_FILE', $5, $6, $7, $8, $9)""",
        user_id,
        school,
        username,
        email,
        auth,
        identity.key,
        identity.skeleton,
        identity.plain,
        username_key(username),
    )
    return str(user_id)


async def test_shared_identifiers_are_reported_and_left_unkeyed_the_rest_backfilled(before_0040: str) -> None:
    conn = await asyncpg.connect(before_0040)
    try:
        north, south = uuid.uuid4(), uuid.uuid4()
        for school in (north, south):
            await conn.execute("INSERT INTO schools (id, name) VALUES ($1, 'Old')", school)
        upper = await _add(conn, north, "a1", "S-100")
        lower = await _add(conn, north, "a2", "s-100")
        dotted = await _add(conn, north, "a3", "İNAN")
        plain = await _add(conn, north, "a4", "inan")
        alone = await _add(conn, north, "a5", "Kim.Park")
        other_school = await _add(conn, south, "b1", "S-100")
        blank = await _add(conn, north, "a6", "")

        await migrate(before_0040, MIGRATIONS, lock_key=MIGRATION_LOCK_KEY)

        reported = await conn.fetch("SELECT user_id::text, group_no FROM auth_identifier_duplicates")
        groups: dict[int, set[str]] = {}
        for row in reported:
            groups.setdefault(row["group_no"], set()).add(row["user_id"])
        assert sorted(groups.values(), key=sorted) == sorted([{upper, lower}, {dotted, plain}], key=sorted)
        keys = {
            str(r["id"]): r["auth_identifier_key"]
            for r in await conn.fetch("SELECT id, auth_identifier_key FROM users")
        }
        assert {keys[u] for u in (upper, lower, dotted, plain, blank)} == {None}, (
            "reported users stay unkeyed"
        )
        assert keys[alone] == auth_identifier_key("Kim.Park") == "kim.park"
        assert keys[other_school] == "s-100", "unique per school only"
        statuses = await conn.fetchval("SELECT count(*) FROM users WHERE auth_identifier <> ''")
        assert statuses == 6, "nobody dropped, no identifier changed"
        with pytest.raises(asyncpg.UniqueViolationError):
            await _add(conn, north, "a7", "KIM.PARK")  # the index holds from now on (keys set by the service)
            await conn.execute(
                "UPDATE users SET auth_identifier_key = 'kim.park' WHERE username = 'a7' AND school_id = $1",
                north,
            )
        await conn.execute(
            "UPDATE users SET status = 'ARCHIVED' WHERE id = $1", alone
        )  # the status CHECK accepts ARCHIVED now
    finally:
        await conn.close()
