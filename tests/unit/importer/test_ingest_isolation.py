"""The batcher on in-memory fakes of its ports: a refused batch is split until the bad rows are alone,
a lone refused row is FAILED and acknowledged, one job in an outage does not hold the slots other
schools' jobs need, and rows past a job's total are dead-lettered JOB_MISMATCH."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from import_service.domain.jobs import (
    IDENTITY_REFUSED,
    EndRecorded,
    ImportMode,
    Job,
    JobSpec,
    Outcome,
    RowResult,
    end_mismatch,
)
from import_service.domain.messages import EndMessage, RowsMessage
from import_service.domain.rows import FileRow
from import_service.service.ingest import Ingest
from import_service.service.ports import BatchRefused, DeadLetter, IdentityUnavailable
from import_service.service.retrying import Backoff


@dataclass
class MemoryJobs:
    jobs: dict[str, Job] = field(default_factory=dict)

    async def ensure(self, spec: JobSpec) -> Job:
        return self.jobs.setdefault(spec.job_id, Job(spec, datetime.now(UTC)))

    async def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def record_end(self, job_id: str, total_rows: int) -> EndRecorded:
        job = self.jobs[job_id]
        why = end_mismatch(job.end_seen, job.total_rows, job.rows_recorded, total_rows)
        if why:
            return EndRecorded(mismatch=why)
        done = job.complete_time is None and job.rows_recorded >= total_rows
        self.jobs[job_id] = replace(
            job, total_rows=total_rows, end_seen=True, complete_time=datetime.now(UTC) if done else None
        )
        return EndRecorded(completed=done)

    async def progress(self, job_id: str) -> tuple[int | None, int]:
        job = self.jobs[job_id]
        return (job.total_rows if job.end_seen else None), job.rows_recorded

    async def list_newest(self, *_: Any) -> list[Job]:
        return []


@dataclass
class MemoryResults:
    jobs: MemoryJobs
    rows: dict[tuple[str, int], RowResult] = field(default_factory=dict)

    async def recorded_among(self, job_id: str, row_numbers: Sequence[int]) -> set[int]:
        return {n for n in row_numbers if (job_id, n) in self.rows}

    async def record(self, job_id: str, outcomes: Sequence[tuple[FileRow, RowResult]]) -> tuple[int, bool]:
        new = [(r, res) for r, res in outcomes if (job_id, r.row_number) not in self.rows]
        for row, result in new:
            self.rows[(job_id, row.row_number)] = result
        job = self.jobs.jobs[job_id]
        recorded = job.rows_recorded + len(new)
        done = job.complete_time is None and job.end_seen and recorded >= (job.total_rows or 0)
        self.jobs.jobs[job_id] = replace(
            job, rows_recorded=recorded, complete_time=datetime.now(UTC) if done else job.complete_time
        )
        return len(new), done

    async def page(self, *_: Any) -> list[Any]:
        return []

    async def failed_extra_columns(self, job_id: str) -> list[str]:
        return []


class MemoryDeadLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def add(self, letter: DeadLetter) -> bool:
        self.letters.append(letter)
        return True


class MemoryStore:
    def __init__(self) -> None:
        self.jobs = MemoryJobs()
        self.results = MemoryResults(self.jobs)
        self.dead_letters = MemoryDeadLetters()
        self.retries: Any = None

    def unit_of_work(self) -> Any:
        raise NotImplementedError

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None


class StubIdentity:
    """Refuses (INTERNAL, splittable) any batch holding a username starting with "poison"; answers
    UNAVAILABLE (an outage) for the school in ``down``; CREATED otherwise. Counts calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.down: set[str] = set()

    async def apply_rows(self, job: Job, rows: Sequence[FileRow]) -> list[RowResult]:
        self.calls.append((job.spec.school_id, len(rows)))
        await asyncio.sleep(0)
        if job.spec.school_id in self.down:
            raise IdentityUnavailable("identity answered UNAVAILABLE")
        if any(row.username.startswith("poison") for row in rows):
            raise BatchRefused("INTERNAL", "identity answered INTERNAL", code="INTERNAL", whole_batch=False)
        return [RowResult(row.row_number, Outcome.CREATED, user_id=str(uuid.uuid4())) for row in rows]


@dataclass
class Settled:
    acked: list[str] = field(default_factory=list)
    dead: list[tuple[str, str, str]] = field(default_factory=list)


class FakeDelivery:
    def __init__(self, name: str, settled: Settled) -> None:
        self.name, self.settled = name, settled

    async def ack(self) -> None:
        self.settled.acked.append(self.name)

    async def requeue(self) -> None:
        raise AssertionError(f"{self.name} requeued: the settler never returns a message to the queue")

    async def dead_letter(self, reason: str, detail: str, job_id: str | None) -> None:
        self.settled.dead.append((self.name, reason, detail))


def _spec(school: str | None = None) -> JobSpec:
    return JobSpec(str(uuid.uuid4()), school or str(uuid.uuid4()), ImportMode.ONGOING_SYNC)


def _rows(count: int, poison: Sequence[int] = ()) -> tuple[FileRow, ...]:
    return tuple(
        FileRow(n, f"{'poison' if n in poison else 'ok'}-{n}", f"s{n}@uni.example")
        for n in range(1, count + 1)
    )


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _ingest(store: MemoryStore, identity: StubIdentity, **kw: Any) -> Ingest:
    return Ingest(
        store,
        identity,
        batch_rows=kw.pop("batch_rows", 100),
        wait_ms=5,
        backoff=Backoff(initial_seconds=0.01, cap_seconds=0.05),
        **kw,
    )


async def test_a_refused_batch_is_split_until_the_poison_rows_are_alone() -> None:
    store, identity, settled = MemoryStore(), StubIdentity(), Settled()
    ingest = _ingest(store, identity)
    spec = _spec()
    await ingest.accept(RowsMessage(spec, _rows(64, poison=(5, 40))), FakeDelivery("rows", settled))
    await ingest.accept(EndMessage(spec, 64), FakeDelivery("end", settled))

    await _until(lambda: "rows" in settled.acked)

    job = store.jobs.jobs[spec.job_id]
    assert job.rows_recorded == 64 and job.complete_time is not None
    failed = {n: r for (j, n), r in store.results.rows.items() if r.outcome is Outcome.FAILED}
    assert sorted(failed) == [5, 40]
    assert {r.reason for r in failed.values()} == {IDENTITY_REFUSED}
    assert {r.message for r in failed.values()} == {"identity refused this row (INTERNAL)"}
    assert settled.dead == []  # nothing dead-lettered, nothing requeued: the message is acknowledged
    assert len(identity.calls) < 30  # bisection, not one call per row


async def test_one_job_in_an_outage_does_not_hold_every_slot() -> None:
    store, identity, settled = MemoryStore(), StubIdentity(), Settled()
    ingest = _ingest(store, identity, max_in_flight=1, batch_rows=10)
    stuck, other = _spec(), _spec()
    identity.down.add(stuck.school_id)
    for n in range(5):  # five batches of the stuck job, each waiting out its "outage"
        await ingest.accept(
            RowsMessage(stuck, _rows(10 * (n + 1))[10 * n :]), FakeDelivery(f"stuck-{n}", settled)
        )
    await _until(lambda: len(identity.calls) >= 5)
    await ingest.accept(RowsMessage(other, _rows(10)), FakeDelivery("other", settled))

    await _until(lambda: "other" in settled.acked)  # got a slot between the stuck job's retries

    assert not any(name.startswith("stuck") for name in settled.acked)
    identity.down.clear()
    await _until(lambda: len(settled.acked) == 6)
    assert await ingest.drain(1.0)


async def test_rows_past_the_total_are_dead_lettered_job_mismatch_and_resent_rows_complete() -> None:
    store, identity, settled = MemoryStore(), StubIdentity(), Settled()
    ingest = _ingest(store, identity)
    spec = _spec()
    await ingest.accept(EndMessage(spec, 5), FakeDelivery("end", settled))
    await ingest.accept(RowsMessage(spec, _rows(5)), FakeDelivery("first", settled))
    await ingest.accept(RowsMessage(spec, _rows(5)), FakeDelivery("again", settled))  # re-sent rows
    await _until(lambda: {"first", "again"} <= set(settled.acked))
    assert store.jobs.jobs[spec.job_id].complete_time is not None

    extra = (FileRow(3, "ok-3", "s3@uni.example"), FileRow(6, "ok-6", "s6@uni.example"))
    await ingest.accept(RowsMessage(spec, extra), FakeDelivery("sixth", settled))
    await _until(lambda: any(name == "sixth" for name, _, _ in settled.dead))

    assert [(name, reason) for name, reason, _ in settled.dead] == [("sixth", "JOB_MISMATCH")]
    assert (spec.job_id, 6) not in store.results.rows
    assert store.jobs.jobs[spec.job_id].rows_recorded == 5
