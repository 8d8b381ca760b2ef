"""The RPC use cases on fakes: job queries, export of failed rows, re-drive, uploads.

In the style of cosmicpython's ``tests/unit/test_handlers.py``: each use case over the in-memory
store and fake ports (identity as the staff directory, the publisher), one rule a test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from import_service.domain.jobs import ImportMode, JobSpec, JobState, Outcome, RowResult
from import_service.domain.rows import FileFormat, FileRow
from import_service.service.access import SchoolAccess
from import_service.service.job_guard import JobGuard
from import_service.service.jobs import JobQueries
from import_service.service.redrive import Redrives
from import_service.service.retrying import Backoff
from import_service.service.uploads import PUBLISH_CHUNK_ROWS, UploadHeader, Uploads
from shared.errors import Reason, RollcallError
from shared.files import row_reader_for
from shared.files.failed_rows_writer import FailedRowsCsv
from shared.grpc_kit.auth import Caller
from shared.settings import Role
from tests.unit.importer.fakes import FakeIdentity, FakePublisher, MemoryStore

ADMIN = Caller("ops", Role.ADMIN)
SCHOOL = str(uuid.uuid4())
STAFF = Caller("web", Role.PLATFORM, actor_id="staff-1")
STRANGER = Caller("web", Role.PLATFORM, actor_id="staff-of-elsewhere")


class World:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.identity = FakeIdentity()
        self.identity.staff = {"staff-1": SCHOOL, "staff-of-elsewhere": str(uuid.uuid4())}
        self.publisher = FakePublisher()
        access = SchoolAccess(self.identity)
        self.queries = JobQueries(self.store, access, FailedRowsCsv(), watch_poll_seconds=0.001)
        guard = JobGuard(self.identity, Backoff(initial_seconds=0.001))
        self.uploads = Uploads(self.store, self.publisher, access, row_reader_for, guard)
        self.redrives = Redrives(self.store, self.publisher, self.queries, guard)

    async def job(self, outcomes: dict[int, Outcome], *, end: bool = True, **fields: object) -> JobSpec:
        """A job of ``SCHOOL`` whose rows have ``outcomes`` (row number → outcome)."""
        spec = JobSpec(str(uuid.uuid4()), SCHOOL, ImportMode.ONGOING_SYNC, **fields)  # type: ignore[arg-type]
        await self.store.jobs.ensure(spec)
        rows = [
            (FileRow(n, f"user-{n}", f"u{n}@uni.example", extra=(("class", f"c{n}"),)), RowResult(n, o))
            for n, o in outcomes.items()
        ]
        await self.store.results.record(spec.job_id, rows)
        if end:
            await self.store.jobs.record_end(spec.job_id, len(outcomes))
        return spec


async def test_a_job_is_shown_to_staff_of_its_school_only() -> None:
    w = World()
    spec = await w.job({1: Outcome.CREATED})
    assert (await w.queries.get(STAFF, spec.job_id)).counts.created == 1
    with pytest.raises(RollcallError) as refused:
        await w.queries.get(STRANGER, spec.job_id)
    assert refused.value.reason is Reason.NOT_STAFF_OF_SCHOOL


async def test_an_unknown_job_is_not_found_and_an_identity_outage_is_unavailable() -> None:
    w = World()
    with pytest.raises(RollcallError) as missing:
        await w.queries.get(ADMIN, "no-such-job")
    assert missing.value.reason is Reason.JOB_NOT_FOUND
    spec = await w.job({1: Outcome.CREATED})
    with pytest.raises(RollcallError) as down:
        await w.queries.get(Caller("web", Role.PLATFORM, actor_id="down"), spec.job_id)
    assert down.value.reason is Reason.UNAVAILABLE


async def test_jobs_are_listed_newest_first_a_page_at_a_time() -> None:
    w = World()
    specs = [await w.job({}) for _ in range(3)]
    first, token = await w.queries.list_jobs(STAFF, SCHOOL, 2, "")
    rest, last_token = await w.queries.list_jobs(STAFF, SCHOOL, 2, token)
    assert [j.job_id for j in first + rest] == [s.job_id for s in reversed(specs)]
    assert token and last_token == ""


async def test_a_platform_caller_must_name_the_school() -> None:
    w = World()
    with pytest.raises(RollcallError) as refused:
        await w.queries.list_jobs(STAFF, "", 10, "")
    assert refused.value.reason is Reason.INVALID_ARGUMENT


async def test_row_outcomes_are_paged_by_row_number_and_filtered_by_outcome() -> None:
    w = World()
    spec = await w.job({1: Outcome.CREATED, 2: Outcome.FAILED, 3: Outcome.FAILED, 4: Outcome.UPDATED})
    failed, token = await w.queries.rows(ADMIN, spec.job_id, [Outcome.FAILED], 1, "")
    more, end = await w.queries.rows(ADMIN, spec.job_id, [Outcome.FAILED], 1, token)
    assert [r.result.row_number for r in failed + more] == [2, 3] and token and end == ""
    everything, _ = await w.queries.rows(ADMIN, spec.job_id, [], 10, "")
    assert [r.result.row_number for r in everything] == [1, 2, 3, 4]


async def test_watch_yields_each_change_and_ends_once_completed() -> None:
    w = World()
    spec = await w.job({1: Outcome.CREATED}, end=False)
    states = []
    async for job in w.queries.watch(ADMIN, spec.job_id):
        states.append(job.state)
        if len(states) == 1:
            await w.store.jobs.record_end(spec.job_id, 1)
    assert states == [JobState.RECEIVING, JobState.COMPLETED]


async def test_failed_rows_export_as_an_upload_csv_with_their_extra_columns() -> None:
    w = World()
    spec = await w.job({1: Outcome.CREATED, 2: Outcome.FAILED})
    csv = b"".join([chunk async for chunk in w.queries.export_failed(ADMIN, spec.job_id)])
    assert csv.decode("utf-8-sig").splitlines() == [
        "username,email_address,first_name,last_name,auth_identifier,class",
        "user-2,u2@uni.example,,,,c2",
    ]


async def test_a_retry_republishes_the_failed_rows_as_a_linked_manual_job() -> None:
    w = World()
    parent = await w.job({1: Outcome.FAILED, 2: Outcome.CREATED, 3: Outcome.FAILED}, dry_run=True)
    child = await w.redrives.retry_failed(ADMIN, parent.job_id, True, "req-1")

    assert child.spec.parent_job_id == parent.job_id and child.spec.mode is ImportMode.MANUAL_FILE
    assert child.spec.sensitive_fields_update and child.spec.dry_run
    assert [row.row_number for row in w.publisher.rows[child.job_id]] == [1, 3]
    assert w.publisher.ends[child.job_id] == 2


async def test_a_repeated_request_id_returns_the_same_job_and_a_reused_one_is_refused() -> None:
    w = World()
    parent = await w.job({1: Outcome.FAILED})
    first = await w.redrives.retry_failed(ADMIN, parent.job_id, False, "req-1")
    again = await w.redrives.retry_failed(ADMIN, parent.job_id, False, "req-1")
    assert again.job_id == first.job_id and len(w.store.state.jobs) == 2
    with pytest.raises(RollcallError) as reused:
        await w.redrives.retry_failed(ADMIN, parent.job_id, True, "req-1")
    assert reused.value.reason is Reason.REQUEST_ID_REUSED


async def test_a_retry_needs_a_completed_job_with_failed_rows() -> None:
    w = World()
    receiving = await w.job({1: Outcome.FAILED}, end=False)
    clean = await w.job({1: Outcome.CREATED})
    for spec in (receiving, clean):
        with pytest.raises(RollcallError) as refused:
            await w.redrives.retry_failed(ADMIN, spec.job_id, False, "")
        assert refused.value.reason is Reason.FAILED_PRECONDITION
    assert w.publisher.rows == {} and w.store.state.retries == {}


def _header(**fields: object) -> UploadHeader:
    values: dict[str, object] = {
        "school_id": SCHOOL,
        "mode": ImportMode.MANUAL_FILE,
        "sensitive_fields_update": False,
        "dry_run": False,
        "source_name": "spring.csv",
        "file_format": FileFormat.CSV,
    }
    values.update(fields)
    return UploadHeader(**values)  # type: ignore[arg-type]


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _csv(rows: int) -> bytes:
    lines = ["username,email_address"] + [f"user-{n},u{n}@uni.example" for n in range(1, rows + 1)]
    return ("\n".join(lines) + "\n").encode()


async def test_an_upload_is_published_in_chunks_then_ended_as_one_job() -> None:
    w = World()
    body = _csv(PUBLISH_CHUNK_ROWS + 3)
    job = await w.uploads.submit(STAFF, _header(), _chunks(body[:100], body[100:]))

    assert job.spec.source_name == "spring.csv" and job.spec.school_id == SCHOOL
    assert len(w.publisher.rows[job.job_id]) == PUBLISH_CHUNK_ROWS + 3
    assert w.publisher.ends[job.job_id] == PUBLISH_CHUNK_ROWS + 3


async def test_a_bad_header_or_a_stranger_publishes_nothing_and_leaves_no_job() -> None:
    w = World()
    with pytest.raises(RollcallError) as bad:
        await w.uploads.submit(STAFF, _header(school_id="SCHOOL", mode=None), _chunks(_csv(1)))
    assert {v.field for v in bad.value.violations} == {"header.school_id", "header.mode"}
    with pytest.raises(RollcallError) as stranger:
        await w.uploads.submit(STRANGER, _header(), _chunks(_csv(1)))
    assert stranger.value.reason is Reason.NOT_STAFF_OF_SCHOOL
    with pytest.raises(RollcallError):
        await w.uploads.submit(STAFF, _header(), _chunks(b"first_name\nann\n"))  # no required columns
    assert w.store.state.jobs == {} and w.publisher.rows == {}


async def test_a_problem_down_the_file_ends_what_was_published_as_its_own_job() -> None:
    w = World()
    long_row = b"x" * 140_000
    with pytest.raises(RollcallError) as stopped:
        await w.uploads.submit(STAFF, _header(), _chunks(_csv(PUBLISH_CHUNK_ROWS + 1), long_row))

    (job_id,) = w.publisher.ends
    assert w.publisher.ends[job_id] == PUBLISH_CHUNK_ROWS + 1
    assert f"imported as job {job_id}" in stopped.value.message
