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
    RUNNER_PHASES,
    SENSITIVE_FIELDS,
    Archive,
    Counts,
    EndRecorded,
    FieldChange,
    Hold,
    Job,
    JobSpec,
    Outcome,
    Phase,
    RecordedRow,
    RowResult,
    count_field_changes,
    end_mismatch,
    is_complete,
    phase_after_rows,
)
from import_service.domain.messages import ContractViolation, DeadReason, ImportMessage
from import_service.domain.rows import STATUS_COLUMN, FileRow
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
    unapplied: dict[str, set[int]] = field(default_factory=dict)
    archives: dict[str, dict[str, Archive]] = field(default_factory=dict)
    decisions: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)
    decided_by: dict[str, str] = field(default_factory=dict)


class _Holder:
    state: State


class MemoryJobs:
    def __init__(self, holder: _Holder) -> None:
        self._holder = holder

    def _with_letters(self, job: Job) -> Job:
        letters = self._holder.state.letters.values()
        count = sum(1 for d in letters if d.job_id == job.job_id and d.school_id == job.spec.school_id)
        return replace(job, dead_lettered=count)

    async def ensure(self, spec: JobSpec, *, guarded: bool = False) -> Job:
        jobs = self._holder.state.jobs
        if spec.job_id not in jobs:
            first = Phase.UNDOING if spec.undo_of_job_id else Phase.RECEIVING
            jobs[spec.job_id] = Job(spec, _now(), phase=first, guarded=guarded)
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
        completes = job.phase is Phase.RECEIVING and is_complete(True, total_rows, job.rows_recorded)
        job = replace(job, total_rows=total_rows, end_seen=True)
        self._holder.state.jobs[job_id] = job = _rows_in(job) if completes else job
        return EndRecorded(completed=completes, phase=job.phase)

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

    async def record(
        self, job_id: str, outcomes: Sequence[tuple[FileRow, RowResult]], *, applied: bool = True
    ) -> tuple[int, bool]:
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
            if not applied:
                self._holder.state.unapplied.setdefault(job_id, set()).add(result.row_number)
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
            deleted=counts.deleted + tally[Outcome.DELETED],
        )
        rows_recorded = job.rows_recorded + inserted
        completes = job.phase is Phase.RECEIVING and is_complete(job.end_seen, job.total_rows, rows_recorded)
        job = replace(job, rows_recorded=rows_recorded, counts=counts)
        self._holder.state.jobs[job_id] = _rows_in(job) if completes else job
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
        failed = await self.page(job_id, (Outcome.FAILED,), 0, 1 << 62)
        for record in failed:
            names.update(dict.fromkeys(name for name, _ in record.row.extra))
        return [STATUS_COLUMN, *names] if any(r.row.status for r in failed) else list(names)


def _rows_in(job: Job) -> Job:
    """Every row is in: the job moves on to ``phase_after_rows`` (COMPLETED is stamped)."""
    phase = phase_after_rows(job.spec, job.guarded)
    return replace(job, phase=phase, complete_time=_now() if phase is Phase.COMPLETED else None)


def _counts_of(rows: Collection[RecordedRow]) -> Counts:
    results = [record.result for record in rows]

    def count(outcome: Outcome) -> int:
        return sum(1 for r in results if r.outcome is outcome)

    return Counts(
        created=count(Outcome.CREATED),
        updated=count(Outcome.UPDATED),
        unchanged=count(Outcome.UNCHANGED),
        skipped=count(Outcome.SKIPPED),
        failed=count(Outcome.FAILED),
        approved=sum(1 for r in results if r.approved),
        field_changes=count_field_changes({}, results),
        archived=count(Outcome.ARCHIVED),
        deleted=count(Outcome.DELETED),
    )


class MemoryRuns:
    """``JobRunsRepo`` with the PostgreSQL adapter's rules: each phase change only from the phase it
    leaves, leases with an expiry (``clock`` seconds), rows applied over the preview once."""

    def __init__(self, holder: _Holder) -> None:
        self._holder = holder

    @staticmethod
    def clock() -> float:
        return asyncio.get_running_loop().time()

    def _job(self, job_id: str) -> Job:
        return self._holder.state.jobs[job_id]

    def _move(self, job_id: str, leaving: Phase, **changes: object) -> bool:
        job = self._holder.state.jobs.get(job_id)
        if job is None or job.phase is not leaving:
            return False
        self._holder.state.jobs[job_id] = replace(job, **changes)  # type: ignore[arg-type]
        return True

    async def claim(self, owner: str, lease_seconds: float, busy: Sequence[str]) -> str | None:
        now = self.clock()
        for job in sorted(self._holder.state.jobs.values(), key=lambda j: j.create_time):
            lease = self._holder.state.leases.get(job.job_id)
            if job.phase in RUNNER_PHASES and job.job_id not in busy and (lease is None or lease[1] < now):
                self._holder.state.leases[job.job_id] = (owner, now + lease_seconds)
                return job.job_id
        return None

    async def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        lease = self._holder.state.leases.get(job_id)
        if lease is None or lease[0] != owner:
            return False
        self._holder.state.leases[job_id] = (owner, self.clock() + lease_seconds)
        return True

    async def let_go(self, job_id: str, owner: str) -> None:
        lease = self._holder.state.leases.get(job_id)
        if lease is not None and lease[0] == owner:
            self._holder.state.leases[job_id] = (owner, float("-inf"))

    async def preview_figures(self, job_id: str) -> tuple[int, int]:
        rows = self._holder.state.rows.get(job_id, {}).values()
        sensitive = {
            r.result.user_id
            for r in rows
            if r.result.outcome is Outcome.UPDATED
            and any(c.field in SENSITIVE_FIELDS and c.old_value for c in r.result.changes)
        }
        archives = {r.result.user_id for r in rows if r.result.outcome is Outcome.ARCHIVED}
        return len(sensitive), len(archives)

    async def decide(self, job_id: str, hold: Hold, would_archive: Sequence[Archive]) -> bool:
        phase = Phase.HELD if hold.exceeded else Phase.APPLYING
        if not self._move(job_id, Phase.DECIDING, phase=phase, hold=hold):
            return False
        if phase is Phase.HELD:
            kept = self._holder.state.archives.setdefault(job_id, {})
            for archive in would_archive:
                kept.setdefault(archive.user_id, archive)
        return True

    async def release(self, job_id: str, actor: str) -> bool:
        if not self._move(job_id, Phase.HELD, phase=Phase.APPLYING):
            return False
        self._holder.state.decided_by[job_id] = actor
        self._holder.state.leases.pop(job_id, None)
        return True

    async def discard(self, job_id: str, actor: str) -> bool:
        if not self._move(job_id, Phase.HELD, phase=Phase.DISCARDED, complete_time=_now()):
            return False
        self._holder.state.decided_by[job_id] = actor
        self._holder.state.archives.pop(job_id, None)
        return True

    async def unapplied(self, job_id: str, limit: int, after_row: int = 0) -> list[RecordedRow]:
        numbers = sorted(n for n in self._holder.state.unapplied.get(job_id, set()) if n > after_row)[:limit]
        return [self._holder.state.rows[job_id][n] for n in numbers]

    async def apply_results(self, job_id: str, results: Sequence[RowResult]) -> None:
        left = self._holder.state.unapplied.get(job_id, set())
        rows = self._holder.state.rows[job_id]
        for result in results:
            if result.row_number in left:
                rows[result.row_number] = replace(rows[result.row_number], result=result)
                left.discard(result.row_number)

    async def finish_applying(self, job_id: str) -> Phase | None:
        job = self._holder.state.jobs.get(job_id)
        if job is None or job.phase is not Phase.APPLYING or self._holder.state.unapplied.get(job_id):
            return None
        phase = Phase.SWEEPING if job.spec.full_roster else Phase.COMPLETED
        counts = _counts_of(self._holder.state.rows[job_id].values())
        completed = _now() if phase is Phase.COMPLETED else None
        self._move(job_id, Phase.APPLYING, phase=phase, counts=counts, complete_time=completed)
        return phase

    async def finish_sweep(self, job_id: str, archives: Sequence[Archive]) -> bool:
        job = self._holder.state.jobs.get(job_id)
        if job is None or job.phase is not Phase.SWEEPING:
            return False
        explicit = _counts_of(self._holder.state.rows[job_id].values()).archived
        counts = replace(job.counts, archived=explicit + len(archives))
        self._move(job_id, Phase.SWEEPING, phase=Phase.COMPLETED, complete_time=_now(), counts=counts)
        self._holder.state.archives[job_id] = {a.user_id: a for a in archives}
        return True

    async def finish_undo(self, job_id: str, total_rows: int) -> bool:
        return self._move(
            job_id,
            Phase.UNDOING,
            phase=Phase.COMPLETED,
            complete_time=_now(),
            total_rows=total_rows,
            end_seen=True,
        )

    async def archives_page(self, job_id: str, after_user: str, limit: int) -> list[Archive]:
        kept = self._holder.state.archives.get(job_id, {})
        return [kept[u] for u in sorted(kept) if u > after_user][:limit]

    async def start_undo(self, spec: JobSpec) -> bool:
        if any(j.spec.undo_of_job_id == spec.undo_of_job_id for j in self._holder.state.jobs.values()):
            return False
        self._holder.state.jobs[spec.job_id] = Job(spec, _now(), phase=Phase.UNDOING)
        self._holder.state.rows[spec.job_id] = {}
        return True

    async def undo_of(self, job_id: str) -> Job | None:
        return next((j for j in self._holder.state.jobs.values() if j.spec.undo_of_job_id == job_id), None)

    async def decision(self, request_id: str) -> tuple[str, str, str] | None:
        return self._holder.state.decisions.get(request_id)

    async def add_decision(self, request_id: str, action: str, job_id: str, result_job: str) -> bool:
        if request_id in self._holder.state.decisions:
            return False
        self._holder.state.decisions[request_id] = (action, job_id, result_job)
        return True


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
        self.results = MemoryResults(self)
        self.runs = MemoryRuns(self)
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
        self.runs = MemoryRuns(self)
        self.dead_letters = MemoryDeadLetters(self)
        self.retries = MemoryRetries(self)

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    def outcomes(self, job_id: str) -> dict[int, RowResult]:
        return {n: record.result for n, record in self.state.rows.get(job_id, {}).items()}


class FakeIdentity:
    """``JobsIdentity`` and ``StaffDirectory``. A row whose username is in ``students`` matches that
    student (UPDATED with an ``email_address`` change when the email differs, else UNCHANGED); any
    other row is CREATED; a dry run changes nothing (a full roster's remembers whom it named). A
    username starting with "poison" makes the batch refused INTERNAL (splittable); a school in
    ``down`` is an outage (until removed); ``unknown_schools`` are refused NOT_FOUND. ``threshold``
    is every school's change threshold. Records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.dry_runs: list[bool] = []
        self.down: set[str] = set()
        self.unknown_schools: set[str] = set()
        self.staff: dict[str, str] = {}
        self.answer_wrong_rows = False
        self.threshold = 10
        self.students: dict[str, dict[str, str]] = {}
        self.named: dict[str, set[str]] = {}
        self.previewed: dict[str, set[str]] = {}
        self.swept: dict[str, list[Archive]] = {}
        self.undone: dict[str, list[RowResult]] = {}

    def add_student(self, username: str, email: str, status: str = "ACTIVE") -> str:
        user_id = f"s-{username}"
        self.students[username] = {"id": user_id, "email": email, "status": status}
        return user_id

    async def apply_rows(self, job: Job, rows: Sequence[FileRow], *, dry_run: bool) -> list[RowResult]:
        school = job.spec.school_id
        self.calls.append((school, [row.row_number for row in rows]))
        self.dry_runs.append(dry_run)
        await asyncio.sleep(0)
        self._check(school)
        if any(row.username.startswith("poison") for row in rows):
            raise BatchRefused("INTERNAL", "identity answered INTERNAL", code="INTERNAL", whole_batch=False)
        shift = 1 if self.answer_wrong_rows else 0
        results = []
        for row in rows:
            results.append(self._apply(job, row, dry_run, shift))
        return results

    def _apply(self, job: Job, row: FileRow, dry_run: bool, shift: int) -> RowResult:
        number = row.row_number + shift
        student = self.students.get(row.username)
        if student is None:
            if not dry_run:
                self.named.setdefault(job.job_id, set()).add(f"u-{row.row_number}")
            return RowResult(number, Outcome.CREATED, user_id=f"u-{row.row_number}")
        named = self.previewed if dry_run else self.named
        named.setdefault(job.job_id, set()).add(student["id"])
        if student["email"] == row.email_address:
            return RowResult(number, Outcome.UNCHANGED, user_id=student["id"])
        change = FieldChange("email_address", student["email"], row.email_address)
        if not dry_run:
            student["email"] = row.email_address
        return RowResult(number, Outcome.UPDATED, user_id=student["id"], changes=(change,))

    def _check(self, school: str) -> None:
        if school in self.down:
            raise IdentityUnavailable("identity answered UNAVAILABLE")
        if school in self.unknown_schools:
            raise BatchRefused("SCHOOL_NOT_FOUND", "no such school", code="NOT_FOUND")

    async def import_guard(self, school_id: str) -> tuple[int, int]:
        self._check(school_id)
        return self.threshold, len(self.students)

    async def sweep(self, job: Job, *, dry_run: bool) -> tuple[list[Archive], int]:
        self._check(job.spec.school_id)
        if job.job_id in self.swept:
            return self.swept[job.job_id], len(self.students)
        named = self.named.get(job.job_id, set())
        if dry_run:
            named = named | self.previewed.get(job.job_id, set())
        gone = [
            s for name, s in sorted(self.students.items()) if s["status"] == "ACTIVE" and s["id"] not in named
        ]
        if dry_run:
            return [Archive(s["id"], "", s["email"]) for s in gone], len(self.students)
        moment = _now()
        for student in gone:
            student["status"] = "ARCHIVED"
        self.swept[job.job_id] = [Archive(s["id"], "", s["email"], moment) for s in gone]
        return self.swept[job.job_id], len(self.students)

    async def undo_rows(self, undo: Job) -> list[RowResult]:
        self._check(undo.spec.school_id)
        if undo.job_id not in self.undone:
            undone = sorted(self.named.get(undo.spec.undo_of_job_id, set()))
            self.undone[undo.job_id] = [
                RowResult(n, Outcome.UPDATED, user_id=user_id) for n, user_id in enumerate(undone, start=1)
            ]
        return self.undone[undo.job_id]

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
