"""The schools table."""

from __future__ import annotations

from typing import Any

import asyncpg

from identity_service.service.models import School


class PostgresSchools:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def add(self, school: School) -> School:
        row = await self._conn.fetchrow(
            """INSERT INTO schools (id, name, email_domains, sso_enabled) VALUES ($1, $2, $3, $4)
               RETURNING id, name, email_domains, sso_enabled, create_time""",
            school.id,
            school.name,
            list(school.email_domains),
            school.sso_enabled,
        )
        return _school(row)

    async def get(self, school_id: str) -> School | None:
        row = await self._conn.fetchrow(
            "SELECT id, name, email_domains, sso_enabled, create_time FROM schools WHERE id = $1", school_id
        )
        return _school(row) if row else None


def _school(row: Any) -> School:
    return School(
        id=str(row["id"]),
        name=row["name"],
        email_domains=tuple(row["email_domains"]),
        sso_enabled=row["sso_enabled"],
        create_time=row["create_time"],
    )
