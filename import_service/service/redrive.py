"""RetryFailedRows: a completed job's failed rows, as stored, re-driven as a new linked job.

The new job runs as MANUAL_FILE with the sensitive-fields setting asked for, keeps the parent's
dry-run flag and the rows' original numbers, and goes through the queue like any file. A
``request_id`` names one re-drive: repeating it returns the same job (publishing again if the
first attempt stopped before its end message; duplicates are harmless, rows are deduplicated).
"""

from __future__ import annotations

import uuid

from import_service.domain.jobs import ImportMode, Job, JobSpec, JobState, Outcome
from import_service.domain.messages import MAX_SOURCE_NAME_CHARS
from import_service.service.job_guard import JobGuard
from import_service.service.jobs import JobQueries
from import_service.service.ports import RetryRequest, RowsPublisher, Store
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller

PUBLISH_CHUNK_ROWS = 500


class Redrives:
    def __init__(self, store: Store, publisher: RowsPublisher, queries: JobQueries, guard: JobGuard) -> None:
        self._store = store
        self._publisher = publisher
        self._queries = queries
        self._guard = guard

    async def retry_failed(self, caller: Caller, job_id: str, sensitive: bool, request_id: str) -> Job:
        parent = await self._queries.get(caller, job_id)
        if request_id:
            earlier = await self._store.retries.get(request_id)
            if earlier is not None:
                return await self._repeat(earlier, job_id, sensitive)
        if parent.state is not JobState.COMPLETED:
            why = "still receiving rows" if parent.state is JobState.RECEIVING else parent.state.value
            raise RollcallError(
                Reason.FAILED_PRECONDITION, f"only a COMPLETED job's failed rows are re-driven (it is {why})"
            )
        if parent.counts.failed == 0:
            raise RollcallError(Reason.FAILED_PRECONDITION, "the job has no failed rows")
        spec = _child_spec(parent, sensitive)
        guarded = await self._guard.guarded(spec, wait=False)
        async with self._store.unit_of_work() as uow:
            claim = RetryRequest(request_id, job_id, sensitive, spec.job_id)
            if request_id and not await uow.retries.add(claim):
                earlier = await self._store.retries.get(request_id)
                assert earlier is not None
                return await self._repeat(earlier, job_id, sensitive)
            await uow.jobs.ensure(spec, guarded=guarded)
            await uow.commit()
        return await self._publish(spec)

    async def _repeat(self, earlier: RetryRequest, job_id: str, sensitive: bool) -> Job:
        if (earlier.parent_job_id, earlier.sensitive_fields_update) != (job_id, sensitive):
            raise RollcallError(Reason.REQUEST_ID_REUSED, "request_id was used for a different request")
        job = await self._store.jobs.get(earlier.job_id)
        if job is None:
            raise RollcallError(Reason.INTERNAL, "the re-drive of this request_id is missing")
        if not job.end_seen:
            return await self._publish(job.spec)
        return job

    async def _publish(self, spec: JobSpec) -> Job:
        """Publishes the parent's failed rows under ``spec``, then the end message."""
        published = 0
        after = 0
        while True:
            page = await self._store.results.page(
                spec.parent_job_id, (Outcome.FAILED,), after, PUBLISH_CHUNK_ROWS
            )
            if not page:
                break
            await self._publisher.publish_rows(spec, [record.row for record in page])
            published += len(page)
            after = page[-1].result.row_number
        await self._publisher.publish_end(spec, published)
        job = await self._store.jobs.get(spec.job_id)
        assert job is not None
        return job


def _child_spec(parent: Job, sensitive: bool) -> JobSpec:
    source = f"retry of {parent.spec.source_name or parent.job_id}"[:MAX_SOURCE_NAME_CHARS]
    return JobSpec(
        job_id=str(uuid.uuid4()),
        school_id=parent.spec.school_id,
        mode=ImportMode.MANUAL_FILE,
        sensitive_fields_update=sensitive,
        dry_run=parent.spec.dry_run,
        source_name=source,
        parent_job_id=parent.job_id,
    )
