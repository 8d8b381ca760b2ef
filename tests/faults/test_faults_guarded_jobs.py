"""F1 for guarded jobs (issue 9): the import service is killed with SIGKILL while its job runner
applies a guarded 20k-row job over its preview (twice: early and late in the apply), and started
again. The lease of the dead process runs out, the new one takes the job on where it stood, and the
checker finds every row with exactly its planned outcome, each effect once — the preview wrote
nothing in identity, and no row was applied twice."""

from __future__ import annotations

import signal

import pytest

from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import new_campus
from tests.faults.fault_support import check_exactly_once, plan_file, publish_all
from tests.process_stack import IMPORT, SERVING, ProcessStack, eventually

pytestmark = pytest.mark.faults


async def _applied(stack: ProcessStack, job_id: str, at_least: int) -> int:
    async def reached() -> int:
        async with stack.import_db() as db:
            row = await db.fetchrow(
                """SELECT j.phase,
                          (SELECT count(*) FROM row_results r
                           WHERE r.job_id = j.job_id AND r.applied) AS applied
                   FROM jobs j WHERE j.job_id = $1""",
                job_id,
            )
        if row is None or row["phase"] != "APPLYING":
            return 0
        return int(row["applied"]) if row["applied"] >= at_least else 0

    return await eventually(reached, timeout=180, what=f"{at_least} rows applied", every=0.02)


async def test_f1_import_service_killed_twice_while_applying_a_guarded_job(fault_stack: ProcessStack) -> None:
    stack = fault_stack
    campus = await new_campus(stack)
    planned = await plan_file(stack, campus, 20_000)
    planned.job.mode = rows_pb.IMPORT_MODE_MANUAL_FILE
    planned.job.sensitive_fields_update = True  # guarded (threshold 10): previewed, then applied
    await publish_all(stack, planned.messages(per_message=100))

    seen = []
    for at_least in (1_000, 12_000):
        seen.append(await _applied(stack, planned.job_id, at_least))
        assert await stack.stop(IMPORT, signal.SIGKILL) == -signal.SIGKILL
        await stack.start(IMPORT)

    job = await stack.wait_job(planned.job_id, timeout=240)
    assert all(n < 20_000 for n in seen), seen
    assert job.hold.threshold_percent == 10 and job.hold.sensitive_changes == 0
    assert stack.services[IMPORT].starts == 3
    await check_exactly_once(stack, planned, campus.id)
    async with stack.import_db() as db:
        assert (
            await db.fetchval(
                "SELECT count(*) FROM row_results WHERE job_id = $1 AND NOT applied", job.job_id
            )
            == 0
        )
    assert job.state == pb.IMPORT_JOB_STATE_COMPLETED
    assert await stack.health(IMPORT) == SERVING
