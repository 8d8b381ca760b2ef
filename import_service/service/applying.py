"""Applying rows through identity, for the consumer (ingest) and the job runner alike.

One ``RowsApplying`` per process holds the slots: up to ``max_in_flight`` ApplyStudentRows calls
at once, a slot held for one call only, never while an outage is waited out (so a job in trouble
cannot hold the slots other schools' jobs need). Outages are waited out (``until_answered``); a
batch identity refuses is split until the rows it refuses are alone, and a lone refused row is
tried ``LONE_ROW_RETRIES`` more times, then FAILED ``IDENTITY_REFUSED``; a refusal of the whole
batch (the school is unknown) fails every row with its reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from import_service import metrics
from import_service.domain.jobs import Job, RowResult, check_results, failed_results, refused_row
from import_service.domain.rows import FileRow
from import_service.service.ports import BatchRefused, IdentityUnavailable, RowsApplier
from import_service.service.retrying import Backoff, until_answered
from shared.logging import get_logger

log = get_logger("import.apply")
LONE_ROW_RETRIES = 1
"""A lone row identity refuses is tried this many times more (after a pause) before it is FAILED."""


class RowsApplying:
    def __init__(self, identity: RowsApplier, backoff: Backoff, max_in_flight: int = 4) -> None:
        self._identity = identity
        self._backoff = backoff
        self._slots = asyncio.Semaphore(max_in_flight)

    async def apply(self, job: Job, rows: Sequence[FileRow], *, dry_run: bool) -> list[RowResult]:
        """Identity's results for ``rows``, one per row in order (see the module)."""
        rows = list(rows)
        try:
            return await self._call(job, rows, dry_run)
        except BatchRefused as refused:
            if refused.whole_batch:
                return failed_results(rows, refused.reason, refused.message)
            if len(rows) == 1:
                return [await self._lone(job, rows[0], refused, dry_run)]
            metrics.BATCH_SPLITS.inc()
            log.warning("import.batch_split", job_id=job.job_id, rows=len(rows), code=refused.code)
            middle = len(rows) // 2
            first = await self.apply(job, rows[:middle], dry_run=dry_run)
            return first + await self.apply(job, rows[middle:], dry_run=dry_run)

    async def _lone(self, job: Job, row: FileRow, refused: BatchRefused, dry_run: bool) -> RowResult:
        for _ in range(LONE_ROW_RETRIES):
            await asyncio.sleep(self._backoff.initial_seconds)
            try:
                return (await self._call(job, [row], dry_run))[0]
            except BatchRefused as again:
                if again.whole_batch:
                    return failed_results([row], again.reason, again.message)[0]
                refused = again
        log.warning("import.row_refused", job_id=job.job_id, row=row.row_number, code=refused.code)
        return refused_row(row, refused.code, refused.reason)

    async def _call(self, job: Job, rows: list[FileRow], dry_run: bool) -> list[RowResult]:
        """One ApplyStudentRows, waiting out outages; a slot is held only while a call is made."""

        async def attempt() -> list[RowResult]:
            async with self._slots:
                results = await self._identity.apply_rows(job, rows, dry_run=dry_run)
            try:
                check_results(rows, results)
            except ValueError:
                raise BatchRefused(
                    "IDENTITY_REFUSED", "identity answered other rows", code="BAD_ANSWER", whole_batch=False
                ) from None
            return results

        return await until_answered(
            attempt, (IdentityUnavailable,), self._backoff, "identity", metrics.IDENTITY_RETRIES.inc
        )
