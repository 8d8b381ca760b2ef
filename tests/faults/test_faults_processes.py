"""F1 and F2 (operations.md, "Reliability targets"): the services' own processes fail mid-job.

F1: the import service is killed with SIGKILL three times during a 20k-row job (nothing is
drained, nothing acknowledged on the way out: unacknowledged messages come back, rows identity
applied but the import service did not record come back too). F2: identity is down for 30 s
mid-job (killed, then started again on the same port). Both: the job completes and the checker
finds every row with exactly its planned outcome, each effect once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime

import pytest

from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import new_campus
from tests.faults.fault_support import check_exactly_once, plan_file, publish_all
from tests.process_stack import IDENTITY, IMPORT, SERVING, ProcessStack, eventually

pytestmark = pytest.mark.faults
OUTAGE_SECONDS = 30.0


async def _received(stack: ProcessStack, job_id: str, at_least: int) -> int:
    async def reached() -> int:
        job = await stack.get_job(job_id, timeout=2)
        return job.rows_received if job is not None and job.rows_received >= at_least else 0

    return await eventually(reached, timeout=120, what=f"{at_least} rows recorded", every=0.02)


async def test_f1_import_service_killed_three_times_during_a_20k_row_job(fault_stack: ProcessStack) -> None:
    stack = fault_stack
    campus = await new_campus(stack)
    planned = await plan_file(stack, campus, 20_000)
    await publish_all(stack, planned.messages(per_message=100))

    kills: list[tuple[int, float]] = []
    for threshold in (2_500, 8_000, 14_000):
        seen = await _received(stack, planned.job_id, threshold)
        assert await stack.stop(IMPORT, signal.SIGKILL) == -signal.SIGKILL
        kills.append((seen, time.time()))
        await stack.start(IMPORT)

    job = await stack.wait_job(planned.job_id, timeout=180)
    assert stack.services[IMPORT].starts == 4
    assert all(seen < 20_000 for seen, _ in kills), kills
    completed = job.complete_time.ToDatetime(tzinfo=UTC)
    assert completed > datetime.fromtimestamp(kills[-1][1], UTC), "the job completed before the last kill"
    await check_exactly_once(stack, planned, campus.id)
    assert await stack.health(IMPORT) == SERVING


async def test_f2_identity_down_30_seconds_mid_job_fails_no_row(fault_stack: ProcessStack) -> None:
    stack = fault_stack
    campus = await new_campus(stack)
    planned = await plan_file(stack, campus, 10_000)
    messages = planned.messages(per_message=100)
    await publish_all(stack, messages[:40])  # 4000 rows now, the rest during the outage
    await _received(stack, planned.job_id, 1_000)
    assert await stack.stop(IDENTITY, signal.SIGKILL) == -signal.SIGKILL
    down_since = time.monotonic()
    await publish_all(stack, messages[40:])

    frozen: int | None = None
    while time.monotonic() - down_since < OUTAGE_SECONDS:  # the outage itself: watch the job meanwhile
        job = await stack.get_job(planned.job_id)
        assert job is not None and job.state == pb.IMPORT_JOB_STATE_RECEIVING
        assert await stack.health(IMPORT) == SERVING  # identity being away is not the import's outage
        if time.monotonic() - down_since > 5:
            frozen = job.rows_received if frozen is None else frozen
            assert job.rows_received == frozen, "rows recorded while identity was down"
        await asyncio.sleep(1.0)  # the outage's length is the deliberate wait; the job is watched meanwhile
    assert frozen is not None and frozen < 10_000
    await stack.start(IDENTITY)

    await stack.wait_job(planned.job_id, timeout=120)
    await check_exactly_once(stack, planned, campus.id)
    assert await stack.metric("rollcall_import_identity_retries_total") > 0
