"""What a fault test reports (issue 12): one line of figures per test, e.g.

``F7: rows 10000, faults 1 (leader node rc1 stopped 4.0 s), lost 0, applied twice 0, time to recover 1.6 s``

``report`` logs the line, keeps it as the test's ``figures`` property (JUnit XML) and hands it to
``tests/faults/conftest.py``, which prints every test's line in a "fault figures" section at the
end of the run (shown whatever the capture and ``-q``: ``make test-faults`` captures output).

Time to recover (``RecoveryClock``): from the fault to the first row applied again, read from
identity's ``import_row_outcomes``. ``recorded_at`` is the start of the transaction that applied
the row, so a row counts only when its transaction began after the fault (work already under way
when the fault hit, finishing just after it, is no recovery); the clock stops at the first poll
(every 0.1 s) that sees such a row committed. The figure is therefore at most 0.1 s (and one
query) late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
import pytest

log = logging.getLogger("tests.faults")

FIGURES = pytest.StashKey[list[str]]()
POLL_SECONDS = 0.1


def report(request: pytest.FixtureRequest, line: str, detail: str = "") -> None:
    """The test's line of figures (and, under it, ``detail``: what else the run measured)."""
    log.warning("%s%s", line, f" [{detail}]" if detail else "")
    request.node.user_properties.append(("figures", line))
    lines = request.config.stash.setdefault(FIGURES, [])
    lines.append(line)
    if detail:
        lines.append(f"    {detail} ({request.node.nodeid})")


class RecoveryClock:
    """Seconds from ``fault()`` to the first row identity applied in a transaction begun after it."""

    def __init__(self, identity_db_url: str, job_id: str) -> None:
        self.identity_db_url = identity_db_url
        self.job_id = job_id
        self.fault_at: float | None = None  # time.monotonic()
        self.fault_wall: float | None = None  # time.time(), compared with the server's now()
        self.recovered_at: float | None = None
        self.poll_errors = 0
        self._task: asyncio.Task[None] | None = None

    def fault(self) -> float:
        """The fault happens now: starts the clock and the polling. The instant (``time.monotonic()``)."""
        self.fault_at, self.fault_wall = time.monotonic(), time.time()
        self._task = asyncio.create_task(self._poll())
        return self.fault_at

    async def _poll(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while self.recovered_at is None:
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.identity_db_url, timeout=2)
                    applied = await conn.fetchval(
                        """SELECT EXISTS (SELECT 1 FROM import_row_outcomes
                           WHERE job_id = $1 AND recorded_at > to_timestamp($2))""",
                        self.job_id,
                        self.fault_wall,
                        timeout=2,
                    )
                    if applied:
                        self.recovered_at = time.monotonic()
                        return
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    self.poll_errors += 1  # the database itself may be the fault (F8)
                    if conn is not None:
                        conn.terminate()
                    conn = None
                await asyncio.sleep(POLL_SECONDS)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    async def seconds(self, timeout: float = 240) -> float:
        """The time to recover (waits for the first row applied after the fault)."""
        assert self._task is not None and self.fault_at is not None, "fault() first"
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        assert self.recovered_at is not None
        return self.recovered_at - self.fault_at

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
