"""Listings of users: search, the pending queue, duplicate candidates (pg_trgm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from identity_service.adapters.postgres.rows import USER_COLUMNS
from identity_service.domain.users import User, UserStatus, UserType

SIMILARITY_THRESHOLD = 0.3
# The two columns of the users_trgm index (migration 0021): search matches either, duplicates the name.
_NAME = "lower(first_name || ' ' || last_name)"
_CONTACT = "lower(email || ' ' || coalesce(username, ''))"
_LOCAL_PART = "lower(left(email, length(email) - strpos(reverse(email), '@')))"


# Statements are assembled from module constants only (S608); every value is a $n parameter.
_PENDING_FIRST = f"""SELECT {USER_COLUMNS} FROM users WHERE school_id = $1 AND status = 'PENDING'
    ORDER BY create_time, id LIMIT $2"""
_PENDING_AFTER = f"""SELECT {USER_COLUMNS} FROM users
    WHERE school_id = $1 AND status = 'PENDING' AND (create_time, id) > ($2, $3::uuid)
    ORDER BY create_time, id LIMIT $4"""
_CANDIDATES = f"""WITH me AS (
        SELECT lower($3 || ' ' || $4) AS name, lower($3) AS first, lower($4) AS last,
               lower(left($5, length($5) - strpos(reverse($5), '@'))) AS local_part,
               lower($6) AS auth)
    SELECT {USER_COLUMNS}, similarity({_NAME}, me.name) AS name_similarity
    FROM users, me
    WHERE school_id = $1 AND user_type = 'STUDENT' AND id <> $2
      AND ({_NAME} % me.name
           OR (me.first || me.last <> '' AND lower(first_name) = me.first AND lower(last_name) = me.last)
           OR (me.local_part <> '' AND {_LOCAL_PART} = me.local_part)
           OR (me.auth <> '' AND lower(auth_identifier) = me.auth))
    ORDER BY name_similarity DESC, id
    LIMIT $7"""


def like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(
    conn: asyncpg.Connection,
    school_id: str,
    text: str,
    user_types: Sequence[UserType],
    statuses: Sequence[UserStatus],
    after: tuple[Any, ...] | None,
    limit: int,
) -> list[Any]:
    args: list[Any] = [school_id]
    conditions = ["school_id = $1"]

    def where(template: str, *values: Any) -> None:
        numbers = [f"${len(args) + i + 1}" for i in range(len(values))]
        args.extend(values)
        conditions.append(template.format(*numbers))

    if text:
        where(f"({_NAME} LIKE lower({{0}}) OR {_CONTACT} LIKE lower({{0}}))", like_pattern(text))
    if user_types:
        where("user_type = ANY({}::text[])", [t.value for t in user_types])
    if statuses:
        where("status = ANY({}::text[])", [s.value for s in statuses])
    if after is not None:
        where("(lower(last_name), lower(first_name), id) > (lower({}), lower({}), {}::uuid)", *after)
    args.append(limit)
    sql = f"""SELECT {USER_COLUMNS} FROM users WHERE {" AND ".join(conditions)}
              ORDER BY lower(last_name), lower(first_name), id LIMIT ${len(args)}"""
    return await conn.fetch(sql, *args)


async def pending(
    conn: asyncpg.Connection, school_id: str, after: tuple[Any, ...] | None, limit: int
) -> list[Any]:
    if after is None:
        return await conn.fetch(_PENDING_FIRST, school_id, limit)
    return await conn.fetch(_PENDING_AFTER, school_id, after[0], after[1], limit)


async def duplicate_candidates(conn: asyncpg.Connection, user: User, limit: int) -> list[Any]:
    """Other students of the school whose names are similar (trigram ≥ 0.3) or equal, or whose email
    local part or auth identifier is the same; each with ``name_similarity``."""
    async with conn.transaction():  # the threshold is transaction-local (a savepoint inside a unit of work)
        await conn.execute(
            "SELECT set_config('pg_trgm.similarity_threshold', $1, true)", str(SIMILARITY_THRESHOLD)
        )
        return await conn.fetch(
            _CANDIDATES,
            user.school_id,
            user.id,
            user.first_name,
            user.last_name,
            user.email,
            user.auth_identifier.strip(),
            limit,
        )
