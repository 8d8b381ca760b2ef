"""Migration 0030 (identity keys) on a database written under the old rules: it backfills every key
with identity's own function, and stops, changing nothing and naming ids only, where existing users
would collide under the new key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from identity_service.adapters.postgres import MIGRATION_LOCK_KEY, MIGRATIONS
from identity_service.domain.identity_keys import EmailIdentity, username_key
from shared.pg import migrate
from tests.integration.identity_keys.migration_support import migrated_up_to


@pytest.fixture
async def old_database(pg_server_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database migrated up to the last migration before the keys (0021)."""
    async with migrated_up_to(pg_server_url, tmp_path / "before", "00[0-2][0-9]_*.sql") as url:
        yield url


async def _add(conn: asyncpg.Connection, school: uuid.UUID, username: str | None, email: str) -> str:
    user_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO users (id, user_type, status, school_id, username, email, origin)
           VALUES ($1, 'STUDENT', 'ACTIVE', $2, $3, $4, 'STUDENT_FILE')""",
        user_id,
        school,
        username,
        email,
    )
    return str(user_id)


async def test_collisions_stop_the_migration_naming_ids_only_then_it_backfills(old_database: str) -> None:
    conn = await asyncpg.connect(old_database)
    try:
        school = uuid.uuid4()
        await conn.execute("INSERT INTO schools (id, name) VALUES ($1, 'Old School')", school)
        straße = await _add(conn, school, "s1", "Straße@old.edu")
        strasse = await _add(conn, school, "s2", "strasse@old.edu")
        jose_accent = await _add(conn, school, "José", "jose1@old.edu")
        jose = await _add(conn, school, "jose", "jose2@old.edu")
        alpha = await _add(conn, school, "a1", "\u0251nn@old.edu")
        ann = await _add(conn, school, "a2", "ann@old.edu")
        plain = await _add(conn, school, "İlker.T@old.edu", "İlker.T@old.edu")

        with pytest.raises(SystemExit) as stopped:
            await migrate(old_database, MIGRATIONS, lock_key=MIGRATION_LOCK_KEY)
        message = str(stopped.value)
        for pair in ((straße, strasse), (jose_accent, jose), (alpha, ann)):
            assert ", ".join(sorted(pair)) in message or all(user in message for user in pair), message
        assert "old.edu" not in message and "@" not in message, "ids only, never addresses"
        assert "docs/runbook.md" in message
        columns = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'users' AND column_name = 'email_key'"
        )
        assert columns == 0, "nothing of the refused migration was applied"

        await conn.execute("DELETE FROM users WHERE id = ANY($1::uuid[])", [strasse, jose, alpha])
        await migrate(old_database, MIGRATIONS, lock_key=MIGRATION_LOCK_KEY)
        stored = {
            str(r["id"]): r
            for r in await conn.fetch(
                "SELECT id, email, username, email_key, email_skeleton, email_plain, username_key FROM users"
            )
        }
        for row in stored.values():
            identity = EmailIdentity.of(row["email"])
            assert (row["email_key"], row["email_skeleton"], row["email_plain"]) == (
                identity.key,
                identity.skeleton,
                identity.plain,
            )
            assert row["username_key"] == username_key(row["username"])
        assert stored[plain]["email_key"] == "ilker.t@old.edu" == stored[plain]["username_key"]
        assert stored[straße]["email_key"] == "strasse@old.edu"
        assert {ann, jose_accent, straße, plain} == set(stored)
    finally:
        await conn.close()
