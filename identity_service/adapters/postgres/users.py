"""The users table: writes, point reads and listings (search, the pending queue, duplicate
candidates with pg_trgm). The student file's set-wise reads and writes are ``student_file``'s.

Uniqueness (email across all users, username per school) is enforced by unique indexes only; an insert
or update that would break it raises EMAIL_TAKEN / USERNAME_TAKEN, so concurrent writers never both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from identity_service.adapters.postgres.user_rows import USER_COLUMNS, taken, to_user
from identity_service.domain.identity_keys import (
    EmailIdentity,
    auth_identifier_key,
    email_key,
    username_key,
)
from identity_service.domain.users import User, UserStatus
from identity_service.service.ports import UserSearch
from shared.errors import Reason, not_found

SIMILARITY_THRESHOLD = 0.3
# The two columns of the users_trgm index (migration 0021): search matches either, duplicates the name.
_NAME = "lower(first_name || ' ' || last_name)"
_CONTACT = "lower(email || ' ' || coalesce(username, ''))"
_LOCAL_PART = "lower(left(email, length(email) - strpos(reverse(email), '@')))"

# Statements are assembled from module constants only (S608); every value is a $n parameter.
# The key columns (email_key, username_key, email_skeleton, email_plain) are computed by
# identity_service.domain.identity_keys and passed in; SQL never derives them.
_INSERT = f"""INSERT INTO users (id, user_type, status, school_id, username, email, first_name, last_name,
        auth_identifier, origin, file_updates_disabled, email_verified, password_hash,
        email_key, email_skeleton, email_plain, username_key, auth_identifier_key)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
    RETURNING {USER_COLUMNS}"""
_BY_ID = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"
_BY_EMAIL = f"SELECT {USER_COLUMNS} FROM users WHERE email_key = $1"
_BY_AUTH_IDENTIFIER = f"""SELECT {USER_COLUMNS} FROM users
    WHERE school_id = $1 AND auth_identifier_key IS NOT NULL AND auth_identifier_key = $2"""
# Non-plain addresses are few: the partial unique index on their skeletons answers a plain address;
# a non-plain one asks every skeleton (the exclusion constraint's GiST index).
_LOOKALIKE = f"""SELECT {USER_COLUMNS} FROM users
    WHERE email_skeleton = $1 AND email_key <> $2 AND (NOT email_plain OR NOT $3::boolean)
        AND id IS DISTINCT FROM $4::uuid LIMIT 1"""
_CREDENTIALS = f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email_key = $1"
_BY_IDS = f"SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1::uuid[]) ORDER BY id"
_SET_STATUS_MANY = f"""UPDATE users SET status = $2, update_time = now(), version = version + 1
    WHERE id = ANY($1::uuid[]) RETURNING {USER_COLUMNS}"""
_CHANGE_EMAIL = f"""UPDATE users SET email = $2, email_key = $4, email_skeleton = $5, email_plain = $6,
        email_verified = true, password_hash = coalesce($3, password_hash), update_time = now(),
        version = version + 1
    WHERE id = $1 RETURNING {USER_COLUMNS}"""
_PENDING_FIRST = f"""SELECT {USER_COLUMNS} FROM users WHERE school_id = $1 AND status = 'PENDING'
    ORDER BY create_time, id LIMIT $2"""
_PENDING_AFTER = f"""SELECT {USER_COLUMNS} FROM users
    WHERE school_id = $1 AND status = 'PENDING' AND (create_time, id) > ($2, $3::uuid)
    ORDER BY create_time, id LIMIT $4"""
_CANDIDATES = f"""WITH me AS (
        SELECT lower($3 || ' ' || $4) AS name, lower($3) AS first, lower($4) AS last,
               lower(left($5, length($5) - strpos(reverse($5), '@'))) AS local_part,
               $6::text AS auth)
    SELECT {USER_COLUMNS}, similarity({_NAME}, me.name) AS name_similarity
    FROM users, me
    WHERE school_id = $1 AND user_type = 'STUDENT' AND id <> $2
      AND ({_NAME} % me.name
           OR (me.first || me.last <> '' AND lower(first_name) = me.first AND lower(last_name) = me.last)
           OR (me.local_part <> '' AND {_LOCAL_PART} = me.local_part)
           OR (me.auth IS NOT NULL AND auth_identifier_key = me.auth))
    ORDER BY name_similarity DESC, id
    LIMIT $7"""


_UPDATE = "UPDATE users SET {assignment}, update_time = now(), version = version + 1 WHERE id = $1 RETURNING "


class PostgresUsers:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def add(self, user: User, password_hash: str | None) -> User:
        try:
            row = await self._conn.fetchrow(
                _INSERT,
                user.id,
                user.user_type.value,
                user.status.value,
                user.school_id,
                user.username,
                user.email,
                user.first_name,
                user.last_name,
                user.auth_identifier,
                user.origin.value,
                user.file_updates_disabled,
                user.email_verified,
                password_hash,
                *_email_columns(user.email),
                None if user.username is None else username_key(user.username),
                auth_identifier_key(user.auth_identifier),
            )
        except asyncpg.IntegrityConstraintViolationError as error:
            raise taken(error) from None
        return to_user(row)

    async def get(self, user_id: str, *, for_update: bool = False) -> User | None:
        row = await self._conn.fetchrow(_BY_ID + " FOR UPDATE" if for_update else _BY_ID, user_id)
        return to_user(row) if row else None

    async def by_email(self, email: str) -> User | None:
        row = await self._conn.fetchrow(_BY_EMAIL, email_key(email))
        return to_user(row) if row else None

    async def by_auth_identifier(self, school_id: str, subject: str) -> User | None:
        key = auth_identifier_key(subject)
        if key is None:
            return None
        row = await self._conn.fetchrow(_BY_AUTH_IDENTIFIER, school_id, key)
        return to_user(row) if row else None

    async def lookalike_of(self, email: str, *, other_than: str | None = None) -> User | None:
        wanted = EmailIdentity.of(email)
        row = await self._conn.fetchrow(_LOOKALIKE, wanted.skeleton, wanted.key, wanted.plain, other_than)
        return to_user(row) if row else None

    async def credentials(self, email: str) -> tuple[User, str | None] | None:
        """The holder of ``email`` and its password hash (None when it has no password)."""
        row = await self._conn.fetchrow(_CREDENTIALS, email_key(email))
        return (to_user(row), row["password_hash"]) if row else None

    async def change_email(self, user_id: str, email: str, password_hash: str | None) -> User:
        """Set a confirmed address (``email_verified``), and the password when a hash is given;
        EMAIL_TAKEN when another user holds the address (the unique index decides)."""
        try:
            row = await self._conn.fetchrow(
                _CHANGE_EMAIL, user_id, email, password_hash, *_email_columns(email)
            )
        except asyncpg.IntegrityConstraintViolationError as error:
            raise taken(error) from None
        if row is None:
            raise not_found(Reason.USER_NOT_FOUND, "user")
        return to_user(row)

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> None:
        """Store a rehash of the same password (new parameters), unless the password changed meanwhile.
        Not a change of the user: no new version."""
        await self._conn.execute(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
            user_id,
            old_hash,
            new_hash,
        )

    async def set_status(self, user_id: str, status: UserStatus) -> User:
        return await self._update(user_id, "status = $2", status.value)

    async def get_many(self, user_ids: Sequence[str], *, for_update: bool = False) -> dict[str, User]:
        rows = await self._conn.fetch(_BY_IDS + " FOR UPDATE" if for_update else _BY_IDS, list(user_ids))
        return {str(row["id"]): to_user(row) for row in rows}

    async def set_status_many(self, user_ids: Sequence[str], status: UserStatus) -> dict[str, User]:
        if not user_ids:
            return {}
        rows = await self._conn.fetch(_SET_STATUS_MANY, list(user_ids), status.value)
        return {str(row["id"]): to_user(row) for row in rows}

    async def set_file_updates_disabled(self, user_id: str, disabled: bool) -> User:
        return await self._update(user_id, "file_updates_disabled = $2", disabled)

    async def delete(self, user_id: str) -> None:
        await self._conn.execute("DELETE FROM users WHERE id = $1", user_id)

    async def search(self, search: UserSearch) -> list[User]:
        args: list[Any] = [search.school_id]
        conditions = ["school_id = $1"]

        def where(template: str, *values: Any) -> None:
            numbers = [f"${len(args) + i + 1}" for i in range(len(values))]
            args.extend(values)
            conditions.append(template.format(*numbers))

        if search.text:
            where(f"({_NAME} LIKE lower({{0}}) OR {_CONTACT} LIKE lower({{0}}))", like_pattern(search.text))
        if search.user_types:
            where("user_type = ANY({}::text[])", [t.value for t in search.user_types])
        if search.statuses:
            where("status = ANY({}::text[])", [s.value for s in search.statuses])
        if search.after is not None:
            where(
                "(lower(last_name), lower(first_name), id) > (lower({}), lower({}), {}::uuid)", *search.after
            )
        args.append(search.limit)
        sql = f"""SELECT {USER_COLUMNS} FROM users WHERE {" AND ".join(conditions)}
                  ORDER BY lower(last_name), lower(first_name), id LIMIT ${len(args)}"""
        return [to_user(row) for row in await self._conn.fetch(sql, *args)]

    async def pending(self, school_id: str, after: tuple[Any, ...] | None, limit: int) -> list[User]:
        if after is None:
            rows = await self._conn.fetch(_PENDING_FIRST, school_id, limit)
        else:
            rows = await self._conn.fetch(_PENDING_AFTER, school_id, after[0], after[1], limit)
        return [to_user(row) for row in rows]

    async def duplicate_candidates(self, user: User, limit: int) -> list[tuple[User, float]]:
        """Other students of the school whose names are similar (trigram ≥ 0.3) or equal, or whose email
        local part or auth identifier is the same; each with the trigram similarity of the names."""
        async with self._conn.transaction():  # the threshold is transaction-local (a savepoint in a uow)
            await self._conn.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', $1, true)", str(SIMILARITY_THRESHOLD)
            )
            rows = await self._conn.fetch(
                _CANDIDATES,
                user.school_id,
                user.id,
                user.first_name,
                user.last_name,
                user.email,
                auth_identifier_key(user.auth_identifier),
                limit,
            )
        return [(to_user(row), float(row["name_similarity"])) for row in rows]

    async def _update(self, user_id: str, assignment: str, value: object) -> User:
        """``assignment`` is one of this module's fixed ``column = $2`` texts."""
        try:
            row = await self._conn.fetchrow(
                _UPDATE.format(assignment=assignment) + USER_COLUMNS, user_id, value
            )
        except asyncpg.IntegrityConstraintViolationError as error:
            raise taken(error) from None
        if row is None:
            raise not_found(Reason.USER_NOT_FOUND, "user")
        return to_user(row)


def like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _email_columns(email: str) -> tuple[str, str, bool]:
    """email_key, email_skeleton, email_plain of an address."""
    identity = EmailIdentity.of(email)
    return identity.key, identity.skeleton, identity.plain
