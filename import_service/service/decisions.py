"""What staff decide about a job: release or discard a HELD job, undo a completed one, and read a
full roster's archives (product.md "File safety").

- ``release``: HELD → APPLYING; the job runner applies every row afresh (never from the preview).
- ``discard``: HELD → DISCARDED, nothing applied, the would-be archives forgotten.
- ``undo``: a new job (``undo_of_job_id``, MANUAL_FILE, UNDOING) that the job runner fills with
  identity's one result per student; only a COMPLETED job that is neither a dry run nor an undo,
  and only once (a unique index on ``undo_of_job_id``), else JOB_NOT_UNDOABLE.

A ``request_id`` names one decision on one job (``job_decisions``): the same request again answers
the job as it is now without deciding twice; the same id for another decision is REQUEST_ID_REUSED.
A decision that cannot be taken (a job not HELD: JOB_NOT_HELD) stores nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from import_service.domain.jobs import Archive, ImportMode, Job, JobSpec, JobState
from import_service.domain.messages import MAX_SOURCE_NAME_CHARS, storable_text_problem
from import_service.service import paging
from import_service.service.jobs import JobQueries, checked_id
from import_service.service.ports import Store
from shared.errors import Reason, RollcallError, invalid
from shared.grpc_kit.auth import Caller

RELEASE, DISCARD, UNDO = "RELEASE", "DISCARD", "UNDO"
MAX_REQUEST_ID_CHARS = 128


def checked_request_id(request_id: str) -> str:
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise invalid("request_id", f"at most {MAX_REQUEST_ID_CHARS} characters")
    if (problem := storable_text_problem(request_id)) is not None:
        raise invalid("request_id", problem)
    return request_id


class JobDecisions:
    def __init__(self, store: Store, queries: JobQueries, wake_runner: Callable[[str], None]) -> None:
        self._store = store
        self._queries = queries
        self._wake = wake_runner

    async def release(self, caller: Caller, job_id: str, request_id: str) -> Job:
        return await self._decide(caller, job_id, checked_request_id(request_id), RELEASE)

    async def discard(self, caller: Caller, job_id: str, request_id: str) -> Job:
        return await self._decide(caller, job_id, checked_request_id(request_id), DISCARD)

    async def undo(self, caller: Caller, job_id: str, request_id: str) -> Job:
        checked_request_id(request_id)
        job = await self._queries.get(caller, job_id)
        if request_id:
            earlier = await self._earlier(request_id, UNDO, job_id)
            if earlier is not None:
                return earlier
        _check_undoable(job)
        spec = _undo_spec(job)
        async with self._store.unit_of_work() as uow:
            if request_id and not await uow.runs.add_decision(request_id, UNDO, job_id, spec.job_id):
                pass  # claimed by a concurrent call with the same id: answered below
            elif not await uow.runs.start_undo(spec):
                raise RollcallError(Reason.JOB_NOT_UNDOABLE, "the job was undone already")
            else:
                await uow.commit()
                self._wake(spec.job_id)
                undo = await self._store.jobs.get(spec.job_id)
                assert undo is not None
                return undo
        earlier = await self._earlier(request_id, UNDO, job_id)
        assert earlier is not None
        return earlier

    async def archives(self, caller: Caller, job_id: str, size: int, token: str) -> tuple[list[Archive], str]:
        """The job's archives by user id (while HELD: the students it would archive)."""
        checked_id(job_id, "job_id")
        limit = paging.page_size(size)
        after = paging.archive_cursor(token)
        await self._queries.get(caller, job_id)
        page = await self._store.runs.archives_page(job_id, after, limit + 1)
        if len(page) <= limit:
            return page, ""
        return page[:limit], paging.archive_cursor_token(page[limit - 1].user_id)

    async def _decide(self, caller: Caller, job_id: str, request_id: str, action: str) -> Job:
        job = await self._queries.get(caller, job_id)
        if request_id:
            earlier = await self._earlier(request_id, action, job_id)
            if earlier is not None:
                return earlier
        actor = caller.actor_id or ""  # the person deciding (an admin client without one: nobody)
        async with self._store.unit_of_work() as uow:
            if request_id and not await uow.runs.add_decision(request_id, action, job_id, job_id):
                pass  # a concurrent call with the same id decided: answered below
            else:
                decided = await (uow.runs.release if action == RELEASE else uow.runs.discard)(job_id, actor)
                if not decided:
                    raise RollcallError(Reason.JOB_NOT_HELD, f"the job is {job.state.value}, not HELD")
                await uow.commit()
        if action == RELEASE:
            self._wake(job_id)
        latest = await self._store.jobs.get(job_id)
        assert latest is not None
        return latest

    async def _earlier(self, request_id: str, action: str, job_id: str) -> Job | None:
        """The job an earlier call with ``request_id`` decided, as it is now (None: first call)."""
        earlier = await self._store.runs.decision(request_id)
        if earlier is None:
            return None
        if earlier[:2] != (action, job_id):
            raise RollcallError(Reason.REQUEST_ID_REUSED, "request_id was used for a different request")
        job = await self._store.jobs.get(earlier[2])
        if job is None:
            raise RollcallError(Reason.INTERNAL, "the job of this request_id is missing")
        return job


def _check_undoable(job: Job) -> None:
    if job.spec.undo_of_job_id:
        raise RollcallError(Reason.JOB_NOT_UNDOABLE, "an undo cannot be undone")
    if job.spec.dry_run:
        raise RollcallError(Reason.JOB_NOT_UNDOABLE, "a dry run changed nothing to undo")
    if job.state is not JobState.COMPLETED:
        why = f"only a COMPLETED job can be undone (it is {job.state.value})"
        raise RollcallError(Reason.JOB_NOT_UNDOABLE, why)


def _undo_spec(job: Job) -> JobSpec:
    source = f"undo of {job.spec.source_name or job.job_id}"[:MAX_SOURCE_NAME_CHARS]
    return JobSpec(
        job_id=str(uuid.uuid4()),
        school_id=job.spec.school_id,
        mode=ImportMode.MANUAL_FILE,
        sensitive_fields_update=True,
        source_name=source,
        undo_of_job_id=job.job_id,
    )
