"""A full batch: a bounded number of statements whatever its size, and one audit event per change."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg

from identity_service.adapters.postgres.audit import PostgresAudit
from identity_service.adapters.postgres.schools import PostgresSchools
from identity_service.adapters.postgres.student_file import PostgresStudentFile
from identity_service.domain.student_file import ImportMode, RowOutcome
from identity_service.service.student_file import RowBatchRequest, apply_student_rows
from tests.integration.identity_rows.rows_support import CLIENT, Campus, later, row, unique


class CountingConnection:
    """Counts the statements sent through the connection (each is one round trip)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._conn, name)
        if name not in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):
            return method

        async def counted(query: str, *args: Any, **kwargs: Any) -> Any:
            self.statements.append(query.split()[0])
            return await method(query, *args, **kwargs)

        return counted


async def _counted_apply(campus: Campus, request: RowBatchRequest) -> tuple[list[Any], list[str]]:
    counter: list[CountingConnection] = []

    @contextlib.asynccontextmanager
    async def factory(**_: bool) -> AsyncIterator[Any]:
        async with campus.db.acquire() as conn, conn.transaction():
            counting = CountingConnection(conn)
            counter.append(counting)
            yield SimpleNamespace(  # the repositories ApplyStudentRows uses, on the counting connection
                schools=PostgresSchools(counting),  # type: ignore[arg-type]
                student_file=PostgresStudentFile(counting),  # type: ignore[arg-type]
                audit=PostgresAudit(counting),  # type: ignore[arg-type]
            )

    results = await apply_student_rows(factory, request, CLIENT)
    assert len(counter) == 1, "one transaction, no retry"
    return results, counter[0].statements


def _request(campus: Campus, job: str, first: str, emails: list[str], hours: int) -> RowBatchRequest:
    rows = [row(n + 1, f"s{n}", emails[n], first, "Lee") for n in range(1000)]
    return RowBatchRequest(campus.school_id, job, later(hours), ImportMode.ONGOING_SYNC, False, False, rows)


async def test_a_1000_row_batch_takes_a_handful_of_statements(campus: Campus) -> None:
    emails = [campus.email() for _ in range(1000)]
    created, statements = await _counted_apply(campus, _request(campus, unique("a"), "Ann", emails, 0))
    assert {r.outcome for r in created} == {RowOutcome.CREATED}
    assert len(statements) <= 6, statements  # + BEGIN and COMMIT
    job = unique("b")
    updated, statements = await _counted_apply(campus, _request(campus, job, "Bo", emails, 1))
    assert {r.outcome for r in updated} == {RowOutcome.UPDATED}
    assert len(statements) <= 6, statements
    again, statements = await _counted_apply(campus, _request(campus, job, "Bo", emails, 1))
    assert again == updated and statements == ["SELECT", "SELECT"], statements  # school, recorded


async def test_one_audit_event_per_change_with_job_and_row(campus: Campus) -> None:
    job, emails = unique("job"), [campus.email() for _ in range(50)]
    await campus.apply([row(n + 1, f"s{n}", emails[n], "A") for n in range(50)], job_id=job)
    changed = [row(n + 1, f"s{n}", emails[n], "B" if n % 2 else "A") for n in range(50)]
    await campus.apply(changed, job_time=later(1))  # a later job: its rows win
    events = await campus.audit()
    actions = [e["action"] for e in events]
    assert actions.count("user.created_by_file") == 50 and actions.count("user.updated_by_file") == 25
    first = json.loads(events[0]["details"])
    assert (first["job_id"], first["row_number"], events[0]["client"]) == (job, 1, CLIENT)
    assert [json.loads(e["details"])["row_number"] for e in events[:50]] == list(range(1, 51))
