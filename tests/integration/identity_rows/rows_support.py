"""What the ApplyStudentRows integration tests share: schools and users made with SQL, request
builders, and snapshots of everything a batch may write (to prove that nothing was written)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from identity_service.domain.identity_keys import EmailIdentity, username_key
from identity_service.domain.student_file import ImportMode, IncomingRow, RowResult
from identity_service.service.ports import UnitOfWorkFactory
from identity_service.service.student_file import RowBatchRequest, apply_student_rows

CLIENT = "importer"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def unique(prefix: str = "x") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def row(
    number: int, username: str, email: str, first: str = "", last: str = "", auth: str = ""
) -> IncomingRow:
    return IncomingRow(number, username, email, first, last, auth)


@dataclass
class Campus:
    """A school of its own (unique email domain) plus the pool and unit-of-work factory to work on it."""

    db: asyncpg.Pool
    factory: UnitOfWorkFactory
    school_id: str
    domain: str

    def email(self, local: str | None = None) -> str:
        return f"{local or unique('s')}@{self.domain}"

    async def add_user(
        self,
        username: str | None,
        email: str,
        *,
        user_type: str = "STUDENT",
        status: str = "ACTIVE",
        school_id: str | None = None,
        first: str = "",
        last: str = "",
        auth: str = "",
        file_updates_disabled: bool = False,
        origin: str = "STUDENT_FILE",
    ) -> str:
        user_id = str(uuid.uuid4())
        identity = EmailIdentity.of(email)
        await self.db.execute(
            """INSERT INTO users (id, user_type, status, school_id, username, email, first_name, last_name,
                   auth_identifier, origin, file_updates_disabled,
                   email_key, email_skeleton, email_plain, username_key)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)""",
            user_id,
            user_type,
            status,
            school_id or self.school_id,
            username,
            email,
            first,
            last,
            auth,
            origin,
            file_updates_disabled,
            identity.key,
            identity.skeleton,
            identity.plain,
            None if username is None else username_key(username),
        )
        return user_id

    async def apply(
        self,
        rows: list[IncomingRow],
        *,
        job_id: str | None = None,
        mode: ImportMode = ImportMode.ONGOING_SYNC,
        sensitive: bool = False,
        dry_run: bool = False,
        job_time: datetime = T0,
    ) -> list[RowResult]:
        request = RowBatchRequest(
            self.school_id, job_id or unique("job"), job_time, mode, sensitive, dry_run, rows
        )
        return await apply_student_rows(self.factory, request, CLIENT)

    async def user(self, user_id: str) -> asyncpg.Record:
        found = await self.db.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
        assert found is not None
        return found

    async def students(self) -> list[asyncpg.Record]:
        return await self.db.fetch("SELECT * FROM users WHERE school_id = $1 ORDER BY id", self.school_id)

    async def audit(self) -> list[asyncpg.Record]:
        return await self.db.fetch(
            "SELECT * FROM audit_events WHERE school_id = $1 ORDER BY id", self.school_id
        )

    async def snapshot(self, job_ids: list[str]) -> dict[str, Any]:
        """Every row a batch of this school (and these jobs) may write."""
        outcomes = await self.db.fetch(
            "SELECT * FROM import_row_outcomes WHERE job_id = ANY($1) ORDER BY job_id, row_number", job_ids
        )
        return {
            "users": [dict(r) for r in await self.students()],
            "all_users": await self.db.fetchval("SELECT count(*) FROM users"),
            "audit": [dict(r) for r in await self.audit()],
            "outcomes": [dict(r) for r in outcomes],
        }


async def new_campus(db: asyncpg.Pool, factory: UnitOfWorkFactory) -> Campus:
    school_id = str(uuid.uuid4())
    domain = f"{unique('u')}.edu"
    await db.execute(
        "INSERT INTO schools (id, name, email_domains) VALUES ($1, $2, $3)", school_id, "Test U", [domain]
    )
    return Campus(db, factory, school_id, domain)


def later(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def essence(results: list[RowResult]) -> list[tuple[Any, ...]]:
    """A result without the ids the database assigns (a created student's id is new every run)."""
    return [(r.row_number, r.outcome, r.approved, r.reason, r.message) for r in results]
