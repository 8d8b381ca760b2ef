"""The schools table."""

from __future__ import annotations

from typing import Any

import asyncpg

from identity_service.service.models import School
from shared.errors import Reason, not_found

_COLUMNS = (
    "id, name, email_domains, sso_enabled, create_time, change_threshold_percent, notify_emails,"
    " muted_notifications"
)
_INSERT = f"""INSERT INTO schools (id, name, email_domains, sso_enabled, change_threshold_percent,
        notify_emails, muted_notifications)
    VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}"""
_BY_ID = f"SELECT {_COLUMNS} FROM schools WHERE id = $1"
_UPDATE = f"""UPDATE schools SET name = $2, email_domains = $3, sso_enabled = $4,
        change_threshold_percent = $5, notify_emails = $6, muted_notifications = $7
    WHERE id = $1 RETURNING {_COLUMNS}"""


class PostgresSchools:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def add(self, school: School) -> School:
        row = await self._conn.fetchrow(_INSERT, school.id, *_settings(school))
        return _school(row)

    async def get(self, school_id: str, *, for_update: bool = False) -> School | None:
        row = await self._conn.fetchrow(_BY_ID + " FOR UPDATE" if for_update else _BY_ID, school_id)
        return _school(row) if row else None

    async def update(self, school: School) -> School:
        row = await self._conn.fetchrow(_UPDATE, school.id, *_settings(school))
        if row is None:
            raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
        return _school(row)


def _settings(school: School) -> tuple[Any, ...]:
    return (
        school.name,
        list(school.email_domains),
        school.sso_enabled,
        school.change_threshold_percent,
        list(school.notify_emails),
        list(school.muted_notifications),
    )


def _school(row: Any) -> School:
    return School(
        id=str(row["id"]),
        name=row["name"],
        email_domains=tuple(row["email_domains"]),
        sso_enabled=row["sso_enabled"],
        create_time=row["create_time"],
        change_threshold_percent=row["change_threshold_percent"],
        notify_emails=tuple(row["notify_emails"]),
        muted_notifications=tuple(row.get("muted_notifications") or ()),  # absent in older event snapshots
    )
