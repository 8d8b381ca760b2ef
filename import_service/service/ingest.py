"""Taking messages off the queue: ``receive`` decides, per delivery, accept / dead-letter / wait;
the batcher turns rows of many messages into ApplyStudentRows batches → recorded outcomes → acks.

``receive(delivery)`` is the one entry: the publisher must be a connector allowed for the routing
key's school (else CONNECTOR_NOT_ALLOWED, before anything is read or created); the body is decoded
once (the decoder port) into domain values checked against the queue contract (``domain.messages``);
a message of a job seen before must agree with it (else JOB_MISMATCH). An end is recorded and
acknowledged; rows join their job's buffer and are settled by the batcher. Anything off-contract,
and any failure that is not an outage, is dead-lettered (``dead_lettering``): never a redelivery
loop. Outages are waited out inside; while shutting down a message is left unsettled (the broker
redelivers it).

Rows are grouped by job (a job fixes school, mode and flags) into batches of up to ``batch_rows``,
flushed when full or ``wait_ms`` after their first row; up to ``max_in_flight`` calls to identity
run at once (a slot is held for one call, never while waiting out an outage, so a job in trouble
cannot hold the slots other schools' jobs need). A batch skips rows that already have an outcome
(one query), leaves out rows past the job's total (JOB_MISMATCH), calls identity (waiting out
outages; a refused batch is split until the rows identity refuses are alone, and a lone refused row
is FAILED ``IDENTITY_REFUSED``), records the outcomes in one statement, and only then settles the
messages whose rows are all recorded. A row that is already in a running batch (a redelivery racing
its original) waits for that batch instead of being applied twice. An unexpected error dead-letters
the batch's messages with PROCESSING_FAILED: never a redelivery loop.

A guarded job (``job_guard``; decided when its first message creates it) is sent to identity as a
dry run and its outcomes recorded as the preview; when its last row is in, the job runner is woken
(``rows_done``) to decide it. Applying rows is ``RowsApplying``'s, shared with the runner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from import_service import metrics
from import_service.domain.connectors import ConnectorPolicy
from import_service.domain.jobs import (
    Job,
    JobSpec,
    Phase,
    RowResult,
    phase_after_rows,
    split_at_total,
)
from import_service.domain.messages import (
    ContractViolation,
    DeadReason,
    EndMessage,
    ImportMessage,
    RowsMessage,
)
from import_service.domain.rows import FileRow
from import_service.service.applying import RowsApplying
from import_service.service.dead_lettering import DeadLettering
from import_service.service.job_guard import JobGuard
from import_service.service.ports import (
    DeadLetterQueue,
    Delivery,
    JobsIdentity,
    MessageDecoder,
    Store,
)
from import_service.service.retrying import Backoff, until_answered
from import_service.service.settling import Refusal, Settler, Tracked
from shared import tracing
from shared.logging import get_logger

T = TypeVar("T")
log = get_logger("import.ingest")
JOB_CACHE_SIZE = 10_000


@dataclass(eq=False, slots=True)
class _Entry:
    row: FileRow
    message: Tracked


@dataclass(eq=False)
class _Buffer:
    job: Job
    entries: list[_Entry]
    timer: asyncio.TimerHandle


@dataclass(eq=False)
class _Batch:
    job: Job
    leaders: list[_Entry] = field(default_factory=list)
    followers: list[_Entry] = field(default_factory=list)


class Ingest:
    def __init__(
        self,
        store: Store,
        identity: JobsIdentity,
        dead_letters: DeadLetterQueue,
        decode: MessageDecoder,
        connectors: ConnectorPolicy,
        *,
        batch_rows: int,
        wait_ms: int,
        max_in_flight: int = 4,
        transient_db: tuple[type[BaseException], ...] = (),
        backoff: Backoff | None = None,
        applying: RowsApplying | None = None,
        rows_done: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._decode = decode
        self._connectors = connectors
        self._batch_rows = batch_rows
        self._wait = wait_ms / 1000
        self._transient_db = transient_db
        self._backoff = backoff or Backoff()
        self._applying = applying or RowsApplying(identity, self._backoff, max_in_flight)
        self._guard = JobGuard(identity, self._backoff)
        self._rows_done = rows_done or (lambda job_id: None)
        self._buffers: dict[str, _Buffer] = {}
        self._running: dict[tuple[str, int], _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._jobs: dict[str, Job] = {}
        self._creating: dict[str, asyncio.Future[Job]] = {}
        self._accepting = True
        self._dead = DeadLettering(store, dead_letters, transient_db, self._backoff)
        self.settler = Settler(self._dead.send)

    async def receive(self, delivery: Delivery) -> int:
        """Takes one delivery and settles it, now or once its rows are recorded (see the module).
        Returns how many rows it carried (an end counts 1; 0 when it could not be read)."""
        refusal = self._connectors.refusal(delivery.user_id, delivery.school_id)
        if refusal is not None:
            await self._dead.send(delivery, Refusal(DeadReason.CONNECTOR_NOT_ALLOWED.value, refusal))
            return 0
        message: ImportMessage | None = None
        try:
            message = self._decode(delivery.body, delivery.content_type, delivery.routing_key)
            if not self._accept_now(message, delivery):
                await self._accept(message, delivery)
        except ContractViolation as violation:
            why = Refusal(violation.reason.value, violation.detail, violation.job_id)
            await self._dead.send(delivery, why)
        except Exception as exc:  # not an outage (those are waited out inside): never a redelivery loop
            log.exception("import.message_failed", message_id=delivery.message_id)
            job_id = message.spec.job_id if message is not None else None
            why = Refusal(
                DeadReason.PROCESSING_FAILED.value, f"{type(exc).__name__} while taking the message", job_id
            )
            await self._dead.send(delivery, why)
        if message is None:
            return 0
        return len(message.rows) if isinstance(message, RowsMessage) else 1

    def _accept_now(self, message: ImportMessage, delivery: Delivery) -> bool:
        """``_accept`` without waiting, for rows of a job already known (nearly every message); False
        when the message needs ``_accept`` (a job not seen yet, an end message)."""
        job = self._jobs.get(message.spec.job_id)
        if job is None or not isinstance(message, RowsMessage):
            return False
        _check_same_job(job, message.spec)
        if self._accepting:  # else left unsettled: the broker redelivers it
            self._add(job, message.rows, self.settler.track(delivery, len(message.rows)))
        return True

    async def _accept(self, message: ImportMessage, delivery: Delivery) -> None:
        """Takes a decoded message; raises ContractViolation when it contradicts its job."""
        job = await self._job(message.spec)
        if not self._accepting:  # shutting down: left unsettled, the broker redelivers it
            return
        if isinstance(message, EndMessage):
            await self._end(job, message.total_rows, delivery)
        else:
            self._add(job, message.rows, self.settler.track(delivery, len(message.rows)))

    def flush_all(self) -> None:
        for job_id in list(self._buffers):
            self._flush(job_id)

    async def drain(self, grace: float) -> bool:
        """Flushes every buffer and waits up to ``grace`` seconds for running batches; True if all ended.

        Batches still running then are cancelled: their messages stay unacknowledged and return to
        the queue when the channel closes.
        """
        self._accepting = False
        self.flush_all()
        pending = set(self._tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return not pending

    async def _job(self, spec: JobSpec) -> Job:
        """The job of ``spec``, created once however many of its first messages arrive at once (so
        a guardable job asks identity for the guard once, not once per message)."""
        job = self._jobs.get(spec.job_id)
        if job is None:
            creating = self._creating.get(spec.job_id)
            if creating is None:
                creating = self._creating[spec.job_id] = asyncio.ensure_future(self._create(spec))
                creating.add_done_callback(lambda _: self._creating.pop(spec.job_id, None))
            job = await asyncio.shield(creating)
        if spec.job_id not in self._jobs:
            if len(self._jobs) >= JOB_CACHE_SIZE:
                del self._jobs[next(iter(self._jobs))]
            self._jobs[spec.job_id] = job
        _check_same_job(job, spec)
        return job

    async def _create(self, spec: JobSpec) -> Job:
        if spec.guardable:
            job = await self._db(lambda: self._store.jobs.get(spec.job_id), "read job")
            if job is not None:
                return job
            guarded = await self._guard.guarded(spec)
            return await self._db(lambda: self._store.jobs.ensure(spec, guarded=guarded), "ensure job")
        return await self._db(lambda: self._store.jobs.ensure(spec), "ensure job")

    async def _end(self, job: Job, total_rows: int, delivery: Delivery) -> None:
        """Records the end; raises ContractViolation (JOB_MISMATCH) when it contradicts the job."""
        end = await self._db(lambda: self._store.jobs.record_end(job.job_id, total_rows), "end")
        if end.mismatch is not None:
            raise ContractViolation(DeadReason.JOB_MISMATCH, end.mismatch, job.job_id)
        log.info("import.end", job_id=job.job_id, total_rows=total_rows, completed=end.completed)
        if end.completed:
            self._rows_in(job)
        await self.settler.done(self.settler.track(delivery, 1))

    def _add(self, job: Job, rows: Sequence[FileRow], tracked: Tracked) -> None:
        buffer = self._buffers.get(job.job_id)
        for row in rows:
            if buffer is None:
                timer = asyncio.get_running_loop().call_later(self._wait, self._flush, job.job_id)
                buffer = self._buffers[job.job_id] = _Buffer(job, [], timer)
            buffer.entries.append(_Entry(row, tracked))
            if len(buffer.entries) >= self._batch_rows:
                self._flush(job.job_id)
                buffer = None

    def _flush(self, job_id: str) -> None:
        buffer = self._buffers.pop(job_id, None)
        if buffer is None:
            return
        buffer.timer.cancel()
        batch = self._claim(buffer.job, buffer.entries)
        run = self._run(batch)
        if tracing.enabled():  # one span per batch: child of its first message's, linked to the others'
            deliveries = (entry.message.delivery for entry in buffer.entries)
            run = tracing.batch(run, job_id, len(buffer.entries), deliveries)
        task = asyncio.create_task(run)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _claim(self, job: Job, entries: list[_Entry]) -> _Batch:
        """Rows already in a running batch (or twice in this one) follow that batch's outcome."""
        batch = _Batch(job)
        for entry in entries:
            key = (job.job_id, entry.row.row_number)
            owner = self._running.get(key)
            if owner is None:
                self._running[key] = batch
                batch.leaders.append(entry)
            else:
                owner.followers.append(entry)
        return batch

    def _release(self, batch: _Batch) -> list[_Entry]:
        for entry in batch.leaders:
            self._running.pop((batch.job.job_id, entry.row.row_number), None)
        return batch.leaders + batch.followers

    async def _run(self, batch: _Batch) -> None:
        failure: Refusal | None = None
        past_total: dict[int, Refusal] = {}
        try:
            if batch.leaders:
                failure, past_total = await self._process(batch.job, [entry.row for entry in batch.leaders])
        except asyncio.CancelledError:
            self._release(batch)
            raise
        entries = self._release(batch)
        if failure is not None or not past_total:
            await self.settler.done_many([entry.message for entry in entries], failure)
            return
        fine = [entry.message for entry in entries if entry.row.row_number not in past_total]
        await self.settler.done_many(fine)
        for entry in entries:
            refusal = past_total.get(entry.row.row_number)
            if refusal is not None:
                await self.settler.done(entry.message, refusal)

    async def _process(self, job: Job, rows: list[FileRow]) -> tuple[Refusal | None, dict[int, Refusal]]:
        """Applies and records the batch: (why its messages must be dead-lettered, if they must;
        the refusal of each row left out because it is past the job's total)."""
        started = time.perf_counter()
        try:
            numbers = [row.row_number for row in rows]
            done = await self._db(lambda: self._store.results.recorded_among(job.job_id, numbers), "dedupe")
            todo = [row for row in rows if row.row_number not in done]
            over: list[FileRow] = []
            total: int | None = None
            results: list[RowResult] = []
            inserted, completed = 0, False
            if todo:
                total, recorded = await self._db(lambda: self._store.jobs.progress(job.job_id), "progress")
                todo, over = split_at_total(todo, total, recorded)
            if todo:
                results = await self._applying.apply(job, todo, dry_run=job.preview)
                outcomes = list(zip(todo, results, strict=True))
                inserted, completed = await self._db(
                    lambda: self._store.results.record(job.job_id, outcomes, applied=not job.guarded),
                    "record",
                )
        except Exception as exc:
            log.exception("import.batch_failed", job_id=job.job_id, rows=len(rows))
            detail = f"{type(exc).__name__} while applying a batch of {len(rows)} rows"
            return Refusal(DeadReason.PROCESSING_FAILED.value, detail, job.job_id), {}
        elapsed = time.perf_counter() - started
        _observe(job, rows, results, len(done), inserted, completed, elapsed)
        if completed:
            self._rows_in(job)
        if over:
            log.warning("import.rows_past_total", job_id=job.job_id, rows=len(over), total=total)
        return None, {row.row_number: _past_total(job, row, total) for row in over}

    def _rows_in(self, job: Job) -> None:
        """Every row of ``job`` has an outcome: it completed, or the job runner takes it on."""
        if phase_after_rows(job.spec, job.guarded) is Phase.COMPLETED:
            metrics.JOBS_COMPLETED.inc()
        else:
            self._rows_done(job.job_id)

    async def _db(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        return await until_answered(call, self._transient_db, self._backoff, what)


def _past_total(job: Job, row: FileRow, total: int | None) -> Refusal:
    detail = f"row {row.row_number} is past the job's total_rows {total} (its distinct rows are all in)"
    return Refusal(DeadReason.JOB_MISMATCH.value, detail, job.job_id)


def _check_same_job(job: Job, spec: JobSpec) -> None:
    differs = job.spec.mismatch(spec)
    if differs is not None:
        detail = f"{differs} differs from the job's first message"
        raise ContractViolation(DeadReason.JOB_MISMATCH, detail, spec.job_id)


def _observe(
    job: Job,
    rows: list[FileRow],
    results: list[RowResult],
    duplicates: int,
    inserted: int,
    completed: bool,
    elapsed: float,
) -> None:
    tally: dict[str, int] = {}
    for result in results:
        tally[result.outcome.value] = tally.get(result.outcome.value, 0) + 1
    if inserted == len(results):
        for outcome, count in tally.items():
            metrics.ROWS.labels(outcome).inc(count)
    metrics.DUPLICATE_ROWS.inc(duplicates + len(results) - inserted)
    metrics.BATCH_SECONDS.observe(elapsed)
    log.info(
        "import.batch",
        job_id=job.job_id,
        rows=len(rows),
        applied=len(results),
        recorded=inserted,
        duplicates=duplicates,
        ms=round(elapsed * 1000, 1),
        outcomes=tally,
        completed=completed,
    )
