"""The job runs contract (issue 9): the job runner's and staff decisions' repository against the
in-memory fake the unit tests use and the real PostgreSQL adapter, so the fake cannot drift: phases
move only from the phase they leave, previews are applied once, counters are counted again from the
applied rows, leases keep a job to one runner, one undo per job, one decision per request id."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from import_service.adapters.postgres.store import PostgresStore
from import_service.domain.jobs import (
    Archive,
    FieldChange,
    Hold,
    ImportMode,
    JobSpec,
    JobState,
    Outcome,
    Phase,
    RowResult,
)
from import_service.domain.rows import FileRow
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


def _spec(**fields: Any) -> JobSpec:
    values: dict[str, Any] = {"sensitive_fields_update": True}
    values.update(fields)
    return JobSpec(str(uuid.uuid4()), str(uuid.uuid4()), ImportMode.MANUAL_FILE, **values)


EMAIL = FieldChange("email_address", "a@uni.example", "b@uni.example")
FILLED = FieldChange("auth_identifier", "", "A-1")


def _row(n: int, outcome: Outcome, user: str = "", *changes: FieldChange) -> tuple[FileRow, RowResult]:
    return FileRow(n, f"user-{n}", f"u{n}@uni.example"), RowResult(n, outcome, user_id=user, changes=changes)


async def _previewed(store: Any, spec: JobSpec, rows: list[tuple[FileRow, RowResult]]) -> None:
    """A guarded job whose preview rows are all in (DECIDING)."""
    await store.jobs.ensure(spec, guarded=True)
    await store.results.record(spec.job_id, rows, applied=False)
    end = await store.jobs.record_end(spec.job_id, len(rows))
    assert (end.completed, end.phase) == (True, Phase.DECIDING)


async def test_a_guarded_job_waits_for_the_runner_and_its_figures_count_students_not_rows(store: Any) -> None:
    spec = _spec()
    rows = [
        _row(1, Outcome.UPDATED, "s1", EMAIL),
        _row(2, Outcome.UPDATED, "s1", EMAIL),  # the same student twice
        _row(3, Outcome.UPDATED, "s3", FILLED),  # a blank auth identifier filled: no change of identity
        _row(4, Outcome.ARCHIVED, "s4"),
        _row(5, Outcome.CREATED, "s5", FieldChange("username", "", "new")),
    ]
    await _previewed(store, spec, rows)
    job = await store.jobs.get(spec.job_id)
    assert (job.state, job.guarded, job.complete_time, job.counts.updated) == (
        JobState.RECEIVING,
        True,
        None,
        3,
    )
    assert await store.runs.preview_figures(spec.job_id) == (1, 1)


async def test_deciding_holds_or_applies_once_and_keeps_the_figures(store: Any) -> None:
    held, applied = _spec(), _spec()
    for spec in (held, applied):
        await _previewed(store, spec, [_row(1, Outcome.UPDATED, "s1", EMAIL)])
    would = [Archive("s9", "nine", "nine@uni.example")]
    assert await store.runs.decide(held.job_id, Hold(5, 1, 10, 10), would)
    assert not await store.runs.decide(held.job_id, Hold(0, 0, 10, 10), []), "decided once"
    assert await store.runs.decide(applied.job_id, Hold(1, 0, 10, 10), would)
    one, other = await store.jobs.get(held.job_id), await store.jobs.get(applied.job_id)
    assert (one.phase, one.hold) == (Phase.HELD, Hold(5, 1, 10, 10))
    assert (other.phase, other.hold) == (Phase.APPLYING, Hold(1, 0, 10, 10))
    assert await store.runs.archives_page(held.job_id, "", 10) == would
    assert await store.runs.archives_page(applied.job_id, "", 10) == []


async def test_release_and_discard_only_from_held(store: Any) -> None:
    kept, dropped = _spec(), _spec()
    for spec in (kept, dropped):
        await _previewed(store, spec, [_row(1, Outcome.UPDATED, "s1", EMAIL)])
        assert not await store.runs.release(spec.job_id, "staff"), "not HELD yet"
        await store.runs.decide(spec.job_id, Hold(1, 0, 1, 10), [Archive("s2", "", "")])
    assert await store.runs.release(kept.job_id, "staff") and not await store.runs.release(
        kept.job_id, "staff"
    )
    assert not await store.runs.discard(kept.job_id, "staff")
    assert await store.runs.discard(dropped.job_id, "staff")
    assert (await store.jobs.get(kept.job_id)).phase is Phase.APPLYING
    gone = await store.jobs.get(dropped.job_id)
    assert (gone.state, gone.complete_time is not None) == (JobState.DISCARDED, True)
    assert await store.runs.archives_page(dropped.job_id, "", 10) == []


async def test_applying_replaces_the_preview_once_then_counts_again(store: Any) -> None:
    spec = _spec()
    await _previewed(store, spec, [_row(n, Outcome.UPDATED, f"s{n}", EMAIL) for n in (1, 2, 3)])
    await store.runs.decide(spec.job_id, Hold(3, 0, 100, 10), [])
    assert [r.result.row_number for r in await store.runs.unapplied(spec.job_id, 2)] == [1, 2]
    assert await store.runs.finish_applying(spec.job_id) is None, "rows are left"
    await store.runs.apply_results(spec.job_id, [RowResult(1, Outcome.UNCHANGED, user_id="s1")])
    await store.runs.apply_results(
        spec.job_id, [RowResult(1, Outcome.FAILED, reason="LATE")]
    )  # applied already
    await store.runs.apply_results(
        spec.job_id,
        [RowResult(2, Outcome.UPDATED, user_id="s2", changes=(EMAIL,)), RowResult(3, Outcome.SKIPPED)],
    )
    assert await store.runs.unapplied(spec.job_id, 10) == []
    assert await store.runs.finish_applying(spec.job_id) is Phase.COMPLETED
    job = await store.jobs.get(spec.job_id)
    counts = job.counts
    assert (job.state, counts.updated, counts.unchanged, counts.skipped, counts.failed) == (
        JobState.COMPLETED,
        1,
        1,
        1,
        0,
    )
    assert counts.field_changes == {"email_address": 1} and job.complete_time is not None
    page = await store.results.page(spec.job_id, (), 0, 10)
    assert [r.result.outcome for r in page] == [Outcome.UNCHANGED, Outcome.UPDATED, Outcome.SKIPPED]


async def test_a_full_roster_is_swept_after_applying_and_keeps_its_archives(store: Any) -> None:
    spec = _spec(sensitive_fields_update=False, full_roster=True)
    await _previewed(store, spec, [_row(1, Outcome.ARCHIVED, "s1")])
    await store.runs.decide(spec.job_id, Hold(0, 2, 100, 10), [])
    await store.runs.apply_results(spec.job_id, [RowResult(1, Outcome.ARCHIVED, user_id="s1")])
    assert await store.runs.finish_applying(spec.job_id) is Phase.SWEEPING
    assert (await store.jobs.get(spec.job_id)).complete_time is None
    swept = [Archive("s2", "two", "two@uni.example", None), Archive("s3", "three", "three@uni.example", None)]
    assert await store.runs.finish_sweep(spec.job_id, swept)
    assert not await store.runs.finish_sweep(spec.job_id, swept[:1]), "swept once"
    job = await store.jobs.get(spec.job_id)
    assert (job.state, job.counts.archived) == (JobState.COMPLETED, 3)
    assert [a.user_id for a in await store.runs.archives_page(spec.job_id, "", 1)] == ["s2"]
    assert [a.user_id for a in await store.runs.archives_page(spec.job_id, "s2", 5)] == ["s3"]


async def test_an_unguarded_full_roster_is_swept_after_its_rows(store: Any) -> None:
    spec = _spec(sensitive_fields_update=False, full_roster=True)
    await store.jobs.ensure(spec)
    await store.results.record(spec.job_id, [_row(1, Outcome.UNCHANGED, "s1")])
    assert (await store.jobs.record_end(spec.job_id, 1)).phase is Phase.SWEEPING


async def test_one_undo_per_job_and_it_completes_with_its_rows(store: Any) -> None:
    done = _spec()
    undo = JobSpec(
        str(uuid.uuid4()), done.school_id, ImportMode.MANUAL_FILE, True, undo_of_job_id=done.job_id
    )
    rival = JobSpec(
        str(uuid.uuid4()), done.school_id, ImportMode.MANUAL_FILE, True, undo_of_job_id=done.job_id
    )
    assert await store.runs.start_undo(undo) and not await store.runs.start_undo(rival)
    assert (await store.runs.undo_of(done.job_id)).job_id == undo.job_id
    assert (await store.jobs.get(undo.job_id)).phase is Phase.UNDOING
    await store.results.record(undo.job_id, [_row(1, Outcome.UPDATED, "s1"), _row(2, Outcome.DELETED, "s2")])
    assert (await store.jobs.get(undo.job_id)).phase is Phase.UNDOING, "rows alone do not complete an undo"
    assert await store.runs.finish_undo(undo.job_id, 2)
    job = await store.jobs.get(undo.job_id)
    assert (job.state, job.total_rows, job.counts.updated, job.counts.deleted) == (
        JobState.COMPLETED,
        2,
        1,
        1,
    )
    assert job.spec.undo_of_job_id == done.job_id


async def test_a_lease_keeps_a_job_to_one_runner_until_it_runs_out_or_is_let_go(store: Any) -> None:
    spec = _spec()
    await _previewed(store, spec, [_row(1, Outcome.UPDATED, "s1", EMAIL)])
    busy: list[str] = []  # other tests' jobs in the shared database are claimed and kept out of the way
    while (claimed := await store.runs.claim("a", 0.3, busy)) not in (spec.job_id, None):
        busy.append(claimed)
    assert claimed == spec.job_id
    assert await store.runs.claim("b", 60, busy) is None
    assert await store.runs.renew(spec.job_id, "a", 0.3) and not await store.runs.renew(spec.job_id, "b", 60)
    await store.runs.let_go(spec.job_id, "a")
    assert await store.runs.claim("b", 0.2, busy) == spec.job_id
    await asyncio.sleep(0.4)
    assert await store.runs.claim("c", 60, busy) == spec.job_id, "an expired lease is taken over"


async def test_a_request_id_names_one_decision(store: Any) -> None:
    request_id = str(uuid.uuid4())
    assert await store.runs.add_decision(request_id, "RELEASE", "job-1", "job-1")
    assert not await store.runs.add_decision(request_id, "DISCARD", "job-1", "job-1")
    assert await store.runs.decision(request_id) == ("RELEASE", "job-1", "job-1")
    assert await store.runs.decision(str(uuid.uuid4())) is None
