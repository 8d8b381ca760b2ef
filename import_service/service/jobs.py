"""Reading jobs: one job, a school's jobs, a job as it changes, its row outcomes, its failed rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection

from import_service.domain.jobs import Job, JobState, Outcome, RecordedRow
from import_service.domain.messages import MAX_JOB_ID_CHARS, MAX_SCHOOL_ID_CHARS
from import_service.service import paging
from import_service.service.access import SchoolAccess
from import_service.service.ports import FailedRowsFile, Store
from shared.errors import Reason, invalid, not_found
from shared.grpc_kit.auth import Caller
from shared.settings import Role

WATCH_POLL_SECONDS = 0.3
EXPORT_PAGE_ROWS = 2000


def checked_id(value: str, field: str, max_chars: int = MAX_JOB_ID_CHARS) -> str:
    """A job or school id as the queue contract allows one (1..``max_chars`` printable characters):
    anything else could never name a job, so it is refused naming ``field`` before any query."""
    if not value:
        raise invalid(field, "required")
    if len(value) > max_chars or not value.isprintable():
        raise invalid(field, f"is not an id (at most {max_chars} printable characters)")
    return value


class JobQueries:
    def __init__(
        self,
        store: Store,
        access: SchoolAccess,
        failed_rows: FailedRowsFile,
        watch_poll_seconds: float = WATCH_POLL_SECONDS,
    ) -> None:
        self._store = store
        self._access = access
        self._failed_rows = failed_rows
        self._poll = watch_poll_seconds

    async def get(self, caller: Caller, job_id: str) -> Job:
        """The job, if it exists and the caller may see its school's jobs."""
        checked_id(job_id, "job_id")
        job = await self._store.jobs.get(job_id)
        if job is None:
            raise not_found(Reason.JOB_NOT_FOUND, "import job")
        await self._access.require(caller, job.spec.school_id)
        return job

    async def list_jobs(self, caller: Caller, school_id: str, size: int, token: str) -> tuple[list[Job], str]:
        """A school's jobs newest first (admin and importer may leave the school out for all)."""
        limit = paging.page_size(size)
        after = paging.job_cursor(token)
        if school_id:
            checked_id(school_id, "school_id", MAX_SCHOOL_ID_CHARS)
            await self._access.require(caller, school_id)
        elif caller.role is Role.PLATFORM:
            raise invalid("school_id", "required")
        jobs = await self._store.jobs.list_newest(school_id or None, after, limit + 1)
        if len(jobs) <= limit:
            return jobs, ""
        last = jobs[limit - 1]
        return jobs[:limit], paging.job_cursor_token(last.create_time, last.job_id)

    async def watch(self, caller: Caller, job_id: str) -> AsyncIterator[Job]:
        """The job now, then each time it changes; ends after it is COMPLETED, DISCARDED or HELD (a
        held job waits for a person: watch it again after releasing it)."""
        job = await self.get(caller, job_id)
        yield job
        while job.state is JobState.RECEIVING:
            await asyncio.sleep(self._poll)
            latest = await self._store.jobs.get(job_id)
            if latest is not None and latest != job:
                job = latest
                yield job

    async def rows(
        self, caller: Caller, job_id: str, outcomes: Collection[Outcome], size: int, token: str
    ) -> tuple[list[RecordedRow], str]:
        """Recorded rows by row number, optionally of some outcomes only."""
        checked_id(job_id, "job_id")
        limit = paging.page_size(size)
        after = paging.row_cursor(token)
        await self.get(caller, job_id)
        records = await self._store.results.page(job_id, outcomes, after, limit + 1)
        if len(records) <= limit:
            return records, ""
        return records[:limit], paging.row_cursor_token(records[limit - 1].result.row_number)

    async def export_failed(self, caller: Caller, job_id: str) -> AsyncIterator[bytes]:
        """The failed rows as an upload CSV (header first), a page of rows at a time."""
        await self.get(caller, job_id)
        extra = self._failed_rows.exportable(await self._store.results.failed_extra_columns(job_id))
        header = b"".join(self._failed_rows.chunks((), extra))
        yield header
        after = 0
        while True:
            page = await self._store.results.page(job_id, (Outcome.FAILED,), after, EXPORT_PAGE_ROWS)
            if not page:
                return
            body = b"".join(self._failed_rows.chunks((record.row for record in page), extra))
            yield body[len(header) :]
            after = page[-1].result.row_number
