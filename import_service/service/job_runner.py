"""The job runner: what happens to a job after its rows are in (domain ``Phase``, ``RUNNER_PHASES``).

Runs in every consumer process. It leases one job at a time per task (``jobs.lease_*``: a process
that dies lets its lease run out and another process, or the same one restarted, takes the job on
where it stood), up to ``max_jobs`` jobs at once, oldest first; woken by the consumer when a job's
rows are in and by staff decisions, and polling otherwise. Each step is a phase change guarded by the
phase it leaves, so a step repeated after a crash changes nothing twice:

- DECIDING (a guarded job's preview is complete): the school's threshold and students (identity's
  GetImportGuard), the students the preview changes in a sensitive field and the explicit archive
  rows (one query), for a full roster the students its sweep would archive (a dry-run sweep) →
  ``Hold``; HELD when ``exceeded`` (nothing applied; staff release or discard it), else APPLYING.
- APPLYING: the preview rows, a few batches at a time by row number, are applied by identity
  for real — each decided afresh against the students as they are now, with the job's own create
  time, so a later job's values still win — and their results replace the preview; then the
  counters are counted again and the job COMPLETED (a full roster: SWEEPING).
- SWEEPING: identity archives the school's file students the job did not name (a dry-run full
  roster: tells who it would); the list is kept with the job; COMPLETED.
- UNDOING: identity's UndoStudentRows; its one result per student becomes the undo job's rows.

A step that fails on something other than an outage is logged and tried again once its lease ran
out (so a lasting fault repeats every ``LEASE_SECONDS``, not in a loop); outages are waited out
inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from import_service import metrics
from import_service.domain.jobs import Archive, Hold, Job, Outcome, Phase, RowResult
from import_service.domain.rows import FileRow
from import_service.service.applying import RowsApplying
from import_service.service.job_guard import JobGuard
from import_service.service.ports import BatchRefused, IdentityUnavailable, JobsIdentity, Store, UnitOfWork
from import_service.service.retrying import Backoff, until_answered
from shared import tracing
from shared.logging import get_logger

T = TypeVar("T")
log = get_logger("import.runner")
LEASE_SECONDS = 15.0
"""A runner renews its lease every third of it; a process that died holds its jobs this long at most."""
POLL_SECONDS = 1.0
APPLY_BATCHES_AT_ONCE = 4
UNDO_RECORD_ROWS = 1000


class JobRunner:
    def __init__(
        self,
        store: Store,
        identity: JobsIdentity,
        applying: RowsApplying,
        *,
        owner: str,
        batch_rows: int,
        transient_db: tuple[type[BaseException], ...] = (),
        backoff: Backoff | None = None,
        lease_seconds: float = LEASE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        max_jobs: int = 2,
    ) -> None:
        self._store = store
        self._identity = identity
        self._applying = applying
        self._owner = owner
        self._batch_rows = batch_rows
        self._transient_db = transient_db
        self._backoff = backoff or Backoff()
        self._guard = JobGuard(identity, self._backoff)
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._max_jobs = max_jobs
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None

    def nudge(self, job_id: str = "") -> None:
        """A job may have something to do now (its rows are in, staff released it, an undo)."""
        self._wake.set()

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        """Stops taking jobs and cancels running steps (their leases are let go: another process, or
        this one restarted, takes the jobs on where they stood)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_until_idle(self) -> None:
        """Runs every job that has something to do, until none has (tests, one-off use)."""
        while True:
            job_id = await self._claim()
            if job_id is None:
                return
            await self._run(job_id)

    async def _forever(self) -> None:
        while True:
            try:
                while len(self._running) < self._max_jobs:
                    job_id = await self._claim()
                    if job_id is None:
                        break
                    task = asyncio.create_task(self._run(job_id))
                    self._running[job_id] = task
                    task.add_done_callback(functools.partial(self._done, job_id))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again after the pause
                log.warning("import.runner_claim_failed", error=type(exc).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()

    def _done(self, job_id: str, _: object = None) -> None:
        self._running.pop(job_id, None)
        self._wake.set()

    async def _claim(self) -> str | None:
        with tracing.untraced():  # a poll every second: no trace of its own (a claimed job's steps have)
            return await self._store.runs.claim(self._owner, self._lease, list(self._running))

    async def _run(self, job_id: str) -> None:
        """Steps the job until it waits for someone (HELD) or is done, renewing the lease meanwhile."""
        work = asyncio.create_task(self._steps(job_id))
        keeper = asyncio.create_task(self._keep_lease(job_id, work))
        failed = False
        try:
            await work
        except asyncio.CancelledError:
            if not work.cancelled():
                work.cancel()
            raise
        except Exception:
            failed = True  # the lease is kept until it runs out: the step is tried again after it
            log.exception("import.runner_step_failed", job_id=job_id)
        finally:
            keeper.cancel()
            if not failed:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await self._store.runs.let_go(job_id, self._owner)

    async def _keep_lease(self, job_id: str, work: asyncio.Task[None]) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                kept = await self._store.runs.renew(job_id, self._owner, self._lease)
            except Exception as exc:  # the database is away: the work waits for it too
                log.warning("import.runner_renew_failed", job_id=job_id, error=type(exc).__name__)
                continue
            if not kept:
                log.warning("import.runner_lease_lost", job_id=job_id)
                work.cancel()
                return

    async def _steps(self, job_id: str) -> None:
        while True:
            job = await self._db(lambda: self._store.jobs.get(job_id), "read job")
            if job is None:
                return
            step = self._step_of(job)
            if step is None:
                return
            await step

    def _step_of(self, job: Job) -> Coroutine[Any, Any, None] | None:
        if job.phase is Phase.DECIDING:
            return self._decide(job)
        if job.phase is Phase.APPLYING:
            return self._apply(job)
        if job.phase is Phase.SWEEPING:
            return self._sweep(job)
        if job.phase is Phase.UNDOING:
            return self._undo(job)
        return None

    async def _decide(self, job: Job) -> None:
        try:
            threshold, students = await self._guard.figures(job.spec.school_id)
        except BatchRefused as refused:  # the school is unknown (or gone): its rows fail on their own
            log.warning("import.guard_refused", job_id=job.job_id, reason=refused.reason)
            threshold, students = 0, 0
        sensitive, explicit = await self._db(lambda: self._store.runs.preview_figures(job.job_id), "figures")
        would: list[Archive] = []
        if job.spec.full_roster:
            would, students = await self._sweep_call(job, dry_run=True, fallback=students)
        hold = Hold(sensitive, explicit + len(would), students, threshold)
        await self._atomic(lambda uow: uow.runs.decide(job.job_id, hold, would), "decide")
        log.info(
            "import.job_decided",
            job_id=job.job_id,
            held=hold.exceeded,
            sensitive_changes=hold.sensitive_changes,
            archives=hold.archives,
            school_students=hold.school_students,
            threshold_percent=hold.threshold_percent,
        )
        if hold.exceeded:
            metrics.JOBS_HELD.inc()

    async def _apply(self, job: Job) -> None:
        """Applies the preview rows by row number, ``APPLY_BATCHES_AT_ONCE`` batches always in flight
        (the next batch is read while others are with identity; each batch's results are written as
        soon as it answers), then completes the job once no preview row is left."""
        slots = asyncio.Semaphore(APPLY_BATCHES_AT_ONCE)
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            slots.release()

        after = 0
        try:
            while True:
                await slots.acquire()
                read = functools.partial(self._store.runs.unapplied, job.job_id, self._batch_rows, after)
                records = await self._db(read, "unapplied")
                if not records:
                    slots.release()
                    break
                after = records[-1].result.row_number
                task = asyncio.create_task(self._apply_batch(job, [record.row for record in records]))
                running.add(task)
                task.add_done_callback(finished)
            await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
        phase = await self._db(lambda: self._store.runs.finish_applying(job.job_id), "finish applying")
        if phase is Phase.COMPLETED:
            metrics.JOBS_COMPLETED.inc()
            log.info("import.job_applied", job_id=job.job_id)

    async def _apply_batch(self, job: Job, rows: list[FileRow]) -> None:
        results = await self._applying.apply(job, rows, dry_run=False)
        await self._db(
            functools.partial(self._store.runs.apply_results, job.job_id, results), "apply results"
        )

    async def _sweep(self, job: Job) -> None:
        archives, _ = await self._sweep_call(job, dry_run=job.spec.dry_run, fallback=0)
        if await self._atomic(lambda uow: uow.runs.finish_sweep(job.job_id, archives), "finish sweep"):
            metrics.JOBS_COMPLETED.inc()
            log.info("import.job_swept", job_id=job.job_id, archived=len(archives), dry_run=job.spec.dry_run)

    async def _sweep_call(self, job: Job, *, dry_run: bool, fallback: int) -> tuple[list[Archive], int]:
        try:
            return await until_answered(
                lambda: self._identity.sweep(job, dry_run=dry_run),
                (IdentityUnavailable,),
                self._backoff,
                "identity sweep",
            )
        except BatchRefused as refused:  # the school is gone: nobody to archive
            log.warning("import.sweep_refused", job_id=job.job_id, reason=refused.reason)
            return [], fallback

    async def _undo(self, job: Job) -> None:
        try:
            results = await until_answered(
                lambda: self._identity.undo_rows(job), (IdentityUnavailable,), self._backoff, "identity undo"
            )
        except BatchRefused as refused:
            results = [RowResult(1, Outcome.FAILED, reason=refused.reason, message=refused.message)]
        outcomes = [(FileRow(result.row_number, "", ""), result) for result in results]

        async def record() -> None:
            async with self._store.unit_of_work() as uow:
                for start in range(0, len(outcomes), UNDO_RECORD_ROWS):
                    await uow.results.record(job.job_id, outcomes[start : start + UNDO_RECORD_ROWS])
                if await uow.runs.finish_undo(job.job_id, len(outcomes)):
                    await uow.commit()

        await self._db(record, "record undo")
        metrics.JOBS_COMPLETED.inc()
        log.info("import.job_undone", job_id=job.job_id, undo_of=job.spec.undo_of_job_id, rows=len(outcomes))

    async def _atomic(self, step: Callable[[UnitOfWork], Awaitable[T]], what: str) -> T:
        """``step`` in one transaction (a phase change and what it keeps — the hold and its would-be
        archives, the sweep's archives — are seen together or not at all), waiting out outages."""

        async def run() -> T:
            async with self._store.unit_of_work() as uow:
                result = await step(uow)
                await uow.commit()
                return result

        return await self._db(run, what)

    async def _db(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        return await until_answered(call, self._transient_db, self._backoff, what)
