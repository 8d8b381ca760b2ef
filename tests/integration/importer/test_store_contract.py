"""The store contract: the same repository tests against the in-memory fake the unit tests use
(``tests/unit/importer/fakes.py``) and the real PostgreSQL adapter, so the fake cannot drift."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from import_service.adapters.postgres.store import PostgresStore
from import_service.domain.jobs import FieldChange, ImportMode, JobSpec, Outcome, RowResult
from import_service.domain.rows import FileRow
from import_service.service.ports import DeadLetter, RetryRequest
from tests.unit.importer.fakes import MemoryStore


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest, import_db_url: str) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    pool = await asyncpg.create_pool(import_db_url, min_size=1, max_size=2)
    try:
        yield PostgresStore(pool)
    finally:
        await pool.close()


def _spec(school: str | None = None, **fields: Any) -> JobSpec:
    return JobSpec(str(uuid.uuid4()), school or str(uuid.uuid4()), ImportMode.ONGOING_SYNC, **fields)


def _outcome(n: int, outcome: Outcome = Outcome.CREATED, **fields: Any) -> tuple[FileRow, RowResult]:
    row = FileRow(n, f"user-{n}", f"u{n}@uni.example", extra=(("class", f"c{n}"),))
    return row, RowResult(n, outcome, **fields)


def _letter(job_id: str | None, school_id: str | None, key: str | None = None) -> DeadLetter:
    return DeadLetter(
        dedupe_key=key or f"id:{uuid.uuid4()}",
        job_id=job_id,
        reason="UNDECODABLE",
        detail="not a protobuf ImportMessage",
        routing_key=f"rows.{school_id}",
        content_type="application/x-protobuf",
        message_id="m",
        body=b"\x00body",
        school_id=school_id,
    )


async def test_ensure_creates_a_job_once_and_keeps_its_first_spec(store: Any) -> None:
    spec = _spec(source_name="a.csv")
    first = await store.jobs.ensure(spec)
    again = await store.jobs.ensure(JobSpec(spec.job_id, spec.school_id, ImportMode.MANUAL_FILE))
    assert first.spec == spec and again.spec == spec and again.create_time == first.create_time
    assert (first.total_rows, first.end_seen, first.rows_recorded, first.dead_lettered) == (None, False, 0, 0)
    assert await store.jobs.get(spec.job_id) == first
    assert await store.jobs.get(str(uuid.uuid4())) is None


async def test_the_first_outcome_wins_and_only_inserted_rows_are_counted(store: Any) -> None:
    spec = _spec()
    await store.jobs.ensure(spec)
    assert await store.results.record(spec.job_id, [_outcome(1), _outcome(2, Outcome.FAILED)]) == (2, False)
    assert await store.results.record(spec.job_id, [_outcome(2), _outcome(3, approved=True)]) == (1, False)

    job = await store.jobs.get(spec.job_id)
    assert job.rows_recorded == 3
    assert (job.counts.created, job.counts.failed, job.counts.approved) == (2, 1, 1)
    assert await store.results.recorded_among(spec.job_id, [1, 3, 4]) == {1, 3}
    assert await store.results.recorded_among(spec.job_id, []) == set()
    assert await store.jobs.progress(spec.job_id) == (None, 3)


async def test_archive_rows_keep_their_status_and_are_counted_once(store: Any) -> None:
    spec = _spec()
    await store.jobs.ensure(spec)
    row = FileRow(1, "ann", "ann@uni.example", status="archived")
    archived = (row, RowResult(1, Outcome.ARCHIVED, user_id=str(uuid.uuid4()), message="archived"))
    assert await store.results.record(spec.job_id, [archived, _outcome(2, Outcome.UPDATED)]) == (2, False)
    assert await store.results.record(spec.job_id, [archived]) == (0, False)
    job = await store.jobs.get(spec.job_id)
    assert (job.counts.archived, job.counts.updated) == (1, 1)
    page = await store.results.page(spec.job_id, [Outcome.ARCHIVED], 0, 10)
    assert [(r.result.outcome, r.row.status) for r in page] == [(Outcome.ARCHIVED, "archived")]


async def test_field_changes_are_kept_per_row_and_counted_per_field_once(store: Any) -> None:
    spec = _spec()
    await store.jobs.ensure(spec)
    created = (FieldChange("username", "", "ann"), FieldChange("email_address", "", "ann@u.edu"))
    renamed = (FieldChange("first_name", "Ann", "Anne"), FieldChange("username", "ann", "ann.lee"))
    approved = (FieldChange("status", "PENDING", "ACTIVE"),)
    await store.results.record(spec.job_id, [_outcome(1, changes=created), _outcome(2, Outcome.FAILED)])
    again = [_outcome(1, changes=renamed), _outcome(3, Outcome.UPDATED, changes=renamed + approved)]
    await store.results.record(spec.job_id, again)  # row 1 is recorded already: neither kept nor counted

    job = await store.jobs.get(spec.job_id)
    assert dict(job.counts.field_changes) == {
        "username": 2,
        "email_address": 1,
        "first_name": 1,
        "status": 1,
    }
    page = await store.results.page(spec.job_id, (), 0, 10)
    assert [r.result.changes for r in page] == [created, (), (*renamed, *approved)]
    assert dict((await store.jobs.ensure(spec)).counts.field_changes) == dict(job.counts.field_changes)


async def test_a_job_completes_with_its_end_or_its_last_row_once(store: Any) -> None:
    ended_first, rows_first = _spec(), _spec()
    for spec in (ended_first, rows_first):
        await store.jobs.ensure(spec)
    assert (await store.jobs.record_end(ended_first.job_id, 2)).completed is False
    assert await store.jobs.progress(ended_first.job_id) == (2, 0)
    assert await store.results.record(ended_first.job_id, [_outcome(1), _outcome(2)]) == (2, True)
    assert await store.results.record(ended_first.job_id, [_outcome(2)]) == (0, False)

    await store.results.record(rows_first.job_id, [_outcome(1)])
    assert (await store.jobs.record_end(rows_first.job_id, 1)).completed is True
    assert (await store.jobs.record_end(rows_first.job_id, 1)).completed is False  # the same end again
    for spec in (ended_first, rows_first):
        assert (await store.jobs.get(spec.job_id)).complete_time is not None


async def test_an_end_contradicting_the_job_records_nothing_and_says_why(store: Any) -> None:
    spec = _spec()
    await store.jobs.ensure(spec)
    await store.results.record(spec.job_id, [_outcome(1), _outcome(2)])
    below = await store.jobs.record_end(spec.job_id, 1)
    assert below.mismatch is not None and "more than total_rows 1" in below.mismatch
    await store.jobs.record_end(spec.job_id, 3)
    other = await store.jobs.record_end(spec.job_id, 4)
    assert other.mismatch is not None and "already said total_rows 3" in other.mismatch
    assert (await store.jobs.get(spec.job_id)).total_rows == 3


async def test_rows_of_an_unknown_job_are_refused(store: Any) -> None:
    with pytest.raises(LookupError):
        await store.results.record(str(uuid.uuid4()), [_outcome(1)])
    with pytest.raises(LookupError):
        await store.jobs.record_end(str(uuid.uuid4()), 1)


async def test_pages_follow_row_numbers_filter_outcomes_and_keep_the_row(store: Any) -> None:
    spec = _spec()
    await store.jobs.ensure(spec)
    await store.results.record(
        spec.job_id, [_outcome(3, Outcome.FAILED), _outcome(1), _outcome(2, Outcome.FAILED)]
    )

    everything = await store.results.page(spec.job_id, (), 0, 10)
    assert [r.result.row_number for r in everything] == [1, 2, 3]
    assert everything[0].row == _outcome(1)[0] and everything[0].result == _outcome(1)[1]
    failed = await store.results.page(spec.job_id, (Outcome.FAILED,), 2, 10)
    assert [r.result.row_number for r in failed] == [3]
    assert len(await store.results.page(spec.job_id, (), 0, 2)) == 2
    assert await store.results.failed_extra_columns(spec.job_id) == ["class"]


async def test_a_dead_letter_is_recorded_once_and_counted_only_on_its_schools_job(store: Any) -> None:
    spec = _spec()
    await store.jobs.ensure(spec)
    assert await store.dead_letters.add(_letter(spec.job_id, spec.school_id, key="id:same")) is True
    assert await store.dead_letters.add(_letter(spec.job_id, spec.school_id, key="id:same")) is False
    assert await store.dead_letters.add(_letter(spec.job_id, str(uuid.uuid4()))) is True
    assert await store.dead_letters.add(_letter(spec.job_id, None)) is True
    assert await store.dead_letters.add(_letter(None, None)) is True
    assert (await store.jobs.get(spec.job_id)).dead_lettered == 1


async def test_jobs_are_listed_newest_first_by_school_after_a_cursor(store: Any) -> None:
    school = str(uuid.uuid4())
    jobs = [await store.jobs.ensure(_spec(school)) for _ in range(3)]
    await store.jobs.ensure(_spec())
    newest = await store.jobs.list_newest(school, None, 10)
    assert [j.job_id for j in newest] == [j.job_id for j in reversed(jobs)]
    after = await store.jobs.list_newest(school, (newest[0].create_time, newest[0].job_id), 1)
    assert [j.job_id for j in after] == [jobs[1].job_id]
    assert len(await store.jobs.list_newest(None, None, 2)) == 2


async def test_retry_requests_are_claimed_once(store: Any) -> None:
    parent = _spec()
    await store.jobs.ensure(parent)
    request = RetryRequest(str(uuid.uuid4()), parent.job_id, True, str(uuid.uuid4()))
    assert await store.retries.get(request.request_id) is None
    assert await store.retries.add(request) is True
    assert await store.retries.add(RetryRequest(request.request_id, parent.job_id, False, "x")) is False
    assert await store.retries.get(request.request_id) == request


async def test_a_unit_of_work_keeps_only_what_it_committed(store: Any) -> None:
    kept, dropped = _spec(), _spec()
    async with store.unit_of_work() as uow:
        await uow.jobs.ensure(kept)
        await uow.retries.add(RetryRequest(f"r-{kept.job_id}", kept.job_id, False, kept.job_id))
        await uow.commit()
    async with store.unit_of_work() as uow:
        await uow.jobs.ensure(dropped)
    assert await store.jobs.get(kept.job_id) is not None
    assert await store.retries.get(f"r-{kept.job_id}") is not None
    assert await store.jobs.get(dropped.job_id) is None


async def test_failed_rows_ask_for_a_status_column_when_one_has_a_status(store: Any) -> None:
    spec = _spec()
    await store.jobs.ensure(spec)
    archived = FileRow(1, "ann", "ann@uni.example", extra=(("grade", "12"),), status="archived")
    await store.results.record(
        spec.job_id, [(archived, RowResult(1, Outcome.FAILED)), _outcome(2, Outcome.FAILED)]
    )
    assert await store.results.failed_extra_columns(spec.job_id) == ["status", "grade", "class"]
    plain = _spec()
    await store.jobs.ensure(plain)
    await store.results.record(plain.job_id, [_outcome(1, Outcome.FAILED)])
    assert await store.results.failed_extra_columns(plain.job_id) == ["class"]
