"""The users table: writes and point reads. Listings live in ``user_queries``.

Uniqueness (email across all users, username per school) is enforced by unique indexes only; an insert
or update that would break it raises EMAIL_TAKEN / USERNAME_TAKEN, so concurrent writers never both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from identity_service.adapters.postgres import user_queries
from identity_service.adapters.postgres.rows import USER_COLUMNS, taken, to_user
from identity_service.domain.identity_keys import EmailIdentity, email_key, username_key
from identity_service.domain.users import User, UserStatus, UserType
from shared.errors import Reason, not_found

# Statements are assembled from module constants only (S608); every value is a $n parameter.
# The key columns (email_key, username_key, email_skeleton, email_plain) are computed by
# identity_service.domain.identity_keys and passed in; SQL never derives them.
_INSERT = f"""INSERT INTO users (id, user_type, status, school_id, username, email, first_name, last_name,
        auth_identifier, origin, file_updates_disabled, email_verified, password_hash,
        email_key, email_skeleton, email_plain, username_key)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
    RETURNING {USER_COLUMNS}"""
_BY_ID = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"
_BY_EMAIL = f"SELECT {USER_COLUMNS} FROM users WHERE email_key = $1"
# Non-plain addresses are few: the partial unique index on their skeletons answers a plain address;
# a non-plain one asks every skeleton (the exclusion constraint's GiST index).
_LOOKALIKE = f"""SELECT {USER_COLUMNS} FROM users
    WHERE email_skeleton = $1 AND email_key <> $2 AND (NOT email_plain OR NOT $3::boolean)
        AND id IS DISTINCT FROM $4::uuid LIMIT 1"""
_CREDENTIALS = f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email_key = $1"
_CHANGE_EMAIL = f"""UPDATE users SET email = $2, email_key = $4, email_skeleton = $5, email_plain = $6,
        email_verified = true, password_hash = coalesce($3, password_hash), update_time = now(),
        version = version + 1
    WHERE id = $1 RETURNING {USER_COLUMNS}"""
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

    async def set_file_updates_disabled(self, user_id: str, disabled: bool) -> User:
        return await self._update(user_id, "file_updates_disabled = $2", disabled)

    async def delete(self, user_id: str) -> None:
        await self._conn.execute("DELETE FROM users WHERE id = $1", user_id)

    async def search(
        self,
        school_id: str,
        text: str,
        user_types: Sequence[UserType],
        statuses: Sequence[UserStatus],
        after: tuple[Any, ...] | None,
        limit: int,
    ) -> list[User]:
        rows = await user_queries.search(self._conn, school_id, text, user_types, statuses, after, limit)
        return [to_user(row) for row in rows]

    async def pending(self, school_id: str, after: tuple[Any, ...] | None, limit: int) -> list[User]:
        return [to_user(row) for row in await user_queries.pending(self._conn, school_id, after, limit)]

    async def duplicate_candidates(self, user: User, limit: int) -> list[tuple[User, float]]:
        rows = await user_queries.duplicate_candidates(self._conn, user, limit)
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


def _email_columns(email: str) -> tuple[str, str, bool]:
    """email_key, email_skeleton, email_plain of an address."""
    identity = EmailIdentity.of(email)
    return identity.key, identity.skeleton, identity.plain
