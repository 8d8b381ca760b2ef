"""In-memory fakes of the import service's ports (``import_service/service/ports.py``).

``MemoryStore`` keeps the jobs, row outcomes, dead letters and retry requests in dicts with the
PostgreSQL adapter's rules (first outcome wins, counters move with the rows actually inserted, the
job completes in the same step, ``dead_lettered`` counts only letters of the job's school);
``test_store_contract.py`` runs the same tests against it and the real adapter. Its unit of work
works on a copy of the state and swaps it in on ``commit``. The other fakes record what the service
asked of them.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType

from import_service.domain.jobs import (
    Counts,
    EndRecorded,
    Job,
    JobSpec,
    Outcome,
    RecordedRow,
    RowResult,
    count_field_changes,
    end_mismatch,
    is_complete,
)
from import_service.domain.messages import ContractViolation, DeadReason, ImportMessage
from import_service.domain.rows import FileRow
from import_service.service.ports import (
    BatchRefused,
    DeadLetter,
    Delivery,
    IdentityUnavailable,
    RetryRequest,
)

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_TICKS = itertools.count(1)


def _now() -> datetime:
    """Strictly increasing, like distinct ``now()`` of separate transactions."""
    return _EPOCH + timedelta(microseconds=next(_TICKS))


@dataclass
class State:
    jobs: dict[str, Job] = field(default_factory=dict)
    rows: dict[str, dict[int, RecordedRow]] = field(default_factory=dict)
    letters: dict[str, DeadLetter] = field(default_factory=dict)
    retries: dict[str, RetryRequest] = field(default_factory=dict)


class _Holder:
    state: State


class MemoryJobs:
    def __init__(self, holder: _Holder) -> None:
        self._holder = holder

    def _with_letters(self, job: Job) -> Job:
        letters = self._holder.state.letters.values()
        count = sum(1 for d in letters if d.job_id == job.job_id and d.school_id == job.spec.school_id)
        return replace(job, dead_lettered=count)

    async def ensure(self, spec: JobSpec) -> Job:
        jobs = self._holder.state.jobs
        if spec.job_id not in jobs:
            jobs[spec.job_id] = Job(spec, _now())
            self._holder.state.rows[spec.job_id] = {}
        return replace(jobs[spec.job_id], dead_lettered=0)

    async def get(self, job_id: str) -> Job | None:
        job = self._holder.state.jobs.get(job_id)
        return None if job is None else self._with_letters(job)

    async def record_end(self, job_id: str, total_rows: int) -> EndRecorded:
        job = self._holder.state.jobs.get(job_id)
        if job is None:
            raise LookupError(f"job {job_id} does not exist")
        why = end_mismatch(job.end_seen, job.total_rows, job.rows_recorded, total_rows)
        if why is not None:
            return EndRecorded(mismatch=why)
        completes = job.complete_time is None and is_complete(True, total_rows, job.rows_recorded)
        self._holder.state.jobs[job_id] = replace(
            job,
            total_rows=total_rows,
            end_seen=True,
            complete_time=_now() if completes else job.complete_time,
        )
        return EndRecorded(completed=completes)

    async def progress(self, job_id: str) -> tuple[int | None, int]:
        job = self._holder.state.jobs.get(job_id)
        if job is None:
            return None, 0
        return (job.total_rows if job.end_seen else None), job.rows_recorded

    async def list_newest(
        self, school_id: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Job]:
        jobs = [
            job
            for job in self._holder.state.jobs.values()
            if (school_id is None or job.spec.school_id == school_id)
            and (after is None or (job.create_time, job.job_id) < after)
        ]
        jobs.sort(key=lambda job: (job.create_time, job.job_id), reverse=True)
        return [self._with_letters(job) for job in jobs[:limit]]


class MemoryResults:
    def __init__(self, holder: _Holder) -> None:
        self._holder = holder

    async def recorded_among(self, job_id: str, row_numbers: Sequence[int]) -> set[int]:
        recorded = self._holder.state.rows.get(job_id, {})
        return {n for n in row_numbers if n in recorded}

    async def record(self, job_id: str, outcomes: Sequence[tuple[FileRow, RowResult]]) -> tuple[int, bool]:
        job = self._holder.state.jobs.get(job_id)
        if job is None:
            raise LookupError(f"job {job_id} does not exist")
        recorded = self._holder.state.rows[job_id]
        tally = dict.fromkeys(Outcome, 0)
        approved = 0
        inserted_results = []
        for row, result in outcomes:
            if result.row_number in recorded:
                continue
            recorded[result.row_number] = RecordedRow(result, replace(row, row_number=result.row_number))
            tally[result.outcome] += 1
            approved += result.approved
            inserted_results.append(result)
        inserted = sum(tally.values())
        counts = job.counts
        counts = Counts(
            created=counts.created + tally[Outcome.CREATED],
            updated=counts.updated + tally[Outcome.UPDATED],
            unchanged=counts.unchanged + tally[Outcome.UNCHANGED],
            skipped=counts.skipped + tally[Outcome.SKIPPED],
            failed=counts.failed + tally[Outcome.FAILED],
            approved=counts.approved + approved,
            archived=counts.archived + tally[Outcome.ARCHIVED],
            field_changes=count_field_changes(counts.field_changes, inserted_results),
        )
        rows_recorded = job.rows_recorded + inserted
        completes = job.complete_time is None and is_complete(job.end_seen, job.total_rows, rows_recorded)
        self._holder.state.jobs[job_id] = replace(
            job,
            rows_recorded=rows_recorded,
            counts=counts,
            complete_time=_now() if completes else job.complete_time,
        )
        return inserted, completes

    async def page(
        self, job_id: str, outcomes: Collection[Outcome], after_row: int, limit: int
    ) -> list[RecordedRow]:
        recorded = self._holder.state.rows.get(job_id, {})
        numbers = sorted(n for n in recorded if n > after_row)
        kept = [recorded[n] for n in numbers if not outcomes or recorded[n].result.outcome in outcomes]
        return kept[:limit]

    async def failed_extra_columns(self, job_id: str) -> list[str]:
        names: dict[str, None] = {}
        for record in await self.page(job_id, (Outcome.FAILED,), 0, 1 << 62):
            names.update(dict.fromkeys(name for name, _ in record.row.extra))
        return list(names)


class MemoryDeadLetters:
    def __init__(self, holder: _Holder) -> None:
        self._holder = holder

    async def add(self, letter: DeadLetter) -> bool:
        letters = self._holder.state.letters
        if letter.dedupe_key in letters:
            return False
        letters[letter.dedupe_key] = letter
        return True


class MemoryRetries:
    def __init__(self, holder: _Holder) -> None:
        self._holder = holder

    async def get(self, request_id: str) -> RetryRequest | None:
        return self._holder.state.retries.get(request_id)

    async def add(self, request: RetryRequest) -> bool:
        if request.request_id in self._holder.state.retries:
            return False
        self._holder.state.retries[request.request_id] = request
        return True


class MemoryUnitOfWork(_Holder):
    """Works on a copy of the store's state; ``commit`` makes it the store's."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.committed = False

    async def __aenter__(self) -> MemoryUnitOfWork:
        self.state = copy.deepcopy(self._store.state)
        self.jobs = MemoryJobs(self)
        self.retries = MemoryRetries(self)
        return self

    async def commit(self) -> None:
        self._store.state = self.state
        self.committed = True

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class MemoryStore(_Holder):
    def __init__(self) -> None:
        self.state = State()
        self.jobs = MemoryJobs(self)
        self.results = MemoryResults(self)
        self.dead_letters = MemoryDeadLetters(self)
        self.retries = MemoryRetries(self)

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    def outcomes(self, job_id: str) -> dict[int, RowResult]:
        return {n: record.result for n, record in self.state.rows.get(job_id, {}).items()}


class FakeIdentity:
    """``RowsApplier`` and ``StaffDirectory``. Rows are CREATED unless a username starts with
    "poison" (the batch is refused INTERNAL, splittable); a school in ``down`` is an outage (until
    removed); ``refuse_school`` refuses whole batches NOT_FOUND. Records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.down: set[str] = set()
        self.unknown_schools: set[str] = set()
        self.staff: dict[str, str] = {}
        self.answer_wrong_rows = False

    async def apply_rows(self, job: Job, rows: Sequence[FileRow]) -> list[RowResult]:
        school = job.spec.school_id
        self.calls.append((school, [row.row_number for row in rows]))
        await asyncio.sleep(0)
        if school in self.down:
            raise IdentityUnavailable("identity answered UNAVAILABLE")
        if school in self.unknown_schools:
            raise BatchRefused("SCHOOL_NOT_FOUND", "no such school", code="NOT_FOUND")
        if any(row.username.startswith("poison") for row in rows):
            raise BatchRefused("INTERNAL", "identity answered INTERNAL", code="INTERNAL", whole_batch=False)
        shift = 1 if self.answer_wrong_rows else 0
        return [
            RowResult(row.row_number + shift, Outcome.CREATED, user_id=f"u-{row.row_number}") for row in rows
        ]

    async def active_staff_school(self, actor_id: str) -> str | None:
        if actor_id == "down":
            raise IdentityUnavailable("identity answered UNAVAILABLE")
        return self.staff.get(actor_id)


@dataclass
class FakePublisher:
    """``RowsPublisher``: remembers each job's published rows and ends; ``fail_after`` rows raise."""

    rows: dict[str, list[FileRow]] = field(default_factory=dict)
    ends: dict[str, int] = field(default_factory=dict)
    specs: dict[str, JobSpec] = field(default_factory=dict)

    async def publish_rows(self, spec: JobSpec, rows: Sequence[FileRow]) -> None:
        self.specs[spec.job_id] = spec
        self.rows.setdefault(spec.job_id, []).extend(rows)

    async def publish_end(self, spec: JobSpec, total_rows: int) -> None:
        self.specs[spec.job_id] = spec
        self.ends[spec.job_id] = total_rows


@dataclass
class FakeDeadLetterQueue:
    """``DeadLetterQueue``: the copies sent, as (delivery name, reason, detail); ``broken`` raises."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)
    broken: bool = False

    async def send(self, delivery: Delivery, reason: str, detail: str) -> None:
        if self.broken:
            raise ConnectionError("the dead-letter exchange is unreachable")
        self.sent.append((delivery.message_id, reason, detail))


@dataclass
class Settled:
    acked: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)


@dataclass
class FakeDelivery:
    """``Delivery``: its ``message_id`` names it in ``settled``; ``body`` is a ``FakeDecoder`` key."""

    message_id: str
    settled: Settled
    body: bytes = b""
    school_id: str = ""
    user_id: str | None = "connector"
    content_type: str = "application/x-protobuf"
    routing_key: str = ""

    def __post_init__(self) -> None:
        self.routing_key = self.routing_key or f"rows.{self.school_id}"

    async def ack(self) -> None:
        self.settled.acked.append(self.message_id)

    async def requeue(self) -> None:
        self.settled.requeued.append(self.message_id)


class FakeDecoder:
    """``MessageDecoder`` over messages registered by ``body_of``; any other body is UNDECODABLE."""

    def __init__(self) -> None:
        self._messages: dict[bytes, ImportMessage] = {}

    def body_of(self, message: ImportMessage) -> bytes:
        body = f"message-{len(self._messages)}".encode()
        self._messages[body] = message
        return body

    def __call__(self, body: bytes, content_type: str, routing_key: str, /) -> ImportMessage:
        message = self._messages.get(body)
        if message is None:
            raise ContractViolation(DeadReason.UNDECODABLE, "not a protobuf ImportMessage")
        return message


class IngestHarness:
    """An ``Ingest`` over the fakes, fed like the consumer feeds it: ``send`` builds a delivery for
    a decoded message (published by ``user_id``, routed to its school unless ``routing_key``)."""

    def __init__(self, **options: object) -> None:
        from import_service.domain.connectors import ConnectorPolicy
        from import_service.service.ingest import Ingest
        from import_service.service.retrying import Backoff

        self.store = MemoryStore()
        self.identity = FakeIdentity()
        self.dead = FakeDeadLetterQueue()
        self.decoder = FakeDecoder()
        self.settled = Settled()
        connectors = ConnectorPolicy("import-service", {"connector": frozenset({"*"})})
        kwargs: dict[str, object] = {"batch_rows": 100, "wait_ms": 5, **options}
        self.ingest = Ingest(
            self.store,
            self.identity,
            self.dead,
            self.decoder,
            connectors,
            backoff=Backoff(initial_seconds=0.01, cap_seconds=0.05),
            **kwargs,  # type: ignore[arg-type]
        )

    async def send(
        self,
        name: str,
        message: ImportMessage | None,
        *,
        user_id: str | None = "connector",
        routing_key: str = "",
    ) -> FakeDelivery:
        body = b"garbage" if message is None else self.decoder.body_of(message)
        school = message.spec.school_id if message is not None else ""
        if routing_key.startswith("rows."):
            school = routing_key[5:]
        delivery = FakeDelivery(
            name, self.settled, body=body, school_id=school, user_id=user_id, routing_key=routing_key
        )
        await self.ingest.receive(delivery)
        return delivery

    def dead_reasons(self) -> list[tuple[str, str]]:
        return [(name, reason) for name, reason, _ in self.dead.sent]

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Waits for ``condition`` with a deadline (never a bare sleep as the wait)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(0.005)
