"""Scale-out (issue 12): two identity replicas behind the import service's round robin, two import
consumers competing for the one rows queue, through whole jobs checked by the fault suite's checker
(every row exactly one outcome, repeated students end with their highest row, counts exact, no
student twice). Both consumers take a share of the messages and both identity replicas answer
ApplyStudentRows calls; a replica of each lost mid-job (identity SIGKILLed, an import consumer
stopped with SIGTERM, as in a scale-in) costs no row and applies none twice."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import pytest

from tests.e2e.system.system_support import new_campus
from tests.faults.fault_support import check_exactly_once, plan_file, publish_all
from tests.process_stack import IDENTITY, IMPORT, SERVING, ProcessStack, eventually, process_stack

IDENTITY_2, IMPORT_2 = f"{IDENTITY}-2", f"{IMPORT}-2"
ROWS = "rollcall_import_rows_total"  # outcomes a consumer recorded
APPLIED = "rollcall_rpc_total"  # with APPLY: the ApplyStudentRows calls a replica answered
APPLY = 'method="ApplyStudentRows"'
TOTAL, REPEATED = 20_000, 200


@pytest.fixture(scope="module")
async def scaled(pg_server_url: str, amqp_url: str, amqp_prefix: str) -> AsyncIterator[ProcessStack]:
    async with process_stack(
        pg_server_url, amqp_url, f"{amqp_prefix}_scale", replicas={IDENTITY: 2, IMPORT: 2}
    ) as stack:
        yield stack


@pytest.fixture
async def stack(scaled: ProcessStack) -> ProcessStack:
    """The scaled-out stack with every replica SERVING (a test that stops one starts it again)."""
    for name, service in scaled.services.items():
        if not service.running:
            await scaled.start(name)
    return scaled


async def _shares(stack: ProcessStack) -> dict[str, float]:
    """Rows recorded by each running import consumer and ApplyStudentRows calls answered by each
    running identity replica so far (counters of their own /metrics)."""
    running = [
        name for name in (*stack.replicas(IMPORT), *stack.replicas(IDENTITY)) if stack.services[name].running
    ]
    return {
        name: await (
            stack.metric(APPLIED, service=name, label=APPLY)
            if name.startswith(IDENTITY)
            else stack.metric(ROWS, service=name)
        )
        for name in running
    }


async def _received(stack: ProcessStack, job_id: str, at_least: int) -> None:
    async def reached() -> bool:
        job = await stack.get_job(job_id, timeout=2)
        return job is not None and job.rows_received >= at_least

    await eventually(reached, timeout=60, what=f"{at_least} rows recorded", every=0.05)


def test_the_stack_runs_two_replicas_of_each_service(scaled: ProcessStack) -> None:
    assert scaled.replicas(IDENTITY) == [IDENTITY, IDENTITY_2]
    assert scaled.replicas(IMPORT) == [IMPORT, IMPORT_2]
    ports = {scaled.services[name].port for name in (IDENTITY, IDENTITY_2, IMPORT, IMPORT_2)}
    assert len(ports) == 4
    identity_addr = scaled.services[IMPORT].env["ROLLCALL_IDENTITY_ADDR"]
    assert identity_addr == f"ipv4:{scaled.services[IDENTITY].addr},{scaled.services[IDENTITY_2].addr}"
    assert scaled.services[IMPORT_2].env["ROLLCALL_IDENTITY_ADDR"] == identity_addr


async def test_a_whole_job_is_shared_by_both_consumers_and_both_identity_replicas(
    stack: ProcessStack,
) -> None:
    campus = await new_campus(stack)
    planned = await plan_file(stack, campus, TOTAL, repeated=REPEATED)
    before = await _shares(stack)
    await publish_all(stack, planned.messages(per_message=100))

    await stack.wait_job(planned.job_id, timeout=120)
    await check_exactly_once(stack, planned, campus.id)
    after = await _shares(stack)
    share = {name: after[name] - before[name] for name in after}
    assert share[IMPORT] > 0 and share[IMPORT_2] > 0, share
    assert share[IMPORT] + share[IMPORT_2] == TOTAL, share  # each row recorded once, by one consumer
    assert share[IDENTITY] > 0 and share[IDENTITY_2] > 0, share


async def test_an_identity_replica_killed_and_a_consumer_stopped_mid_job_cost_no_row(
    stack: ProcessStack,
) -> None:
    campus = await new_campus(stack)
    planned = await plan_file(stack, campus, TOTAL, repeated=REPEATED)
    messages = planned.messages(per_message=100)  # 200 rows messages, then the end
    before = await _shares(stack)

    await publish_all(stack, messages[:70])
    await _received(stack, planned.job_id, 3_000)
    at_kill = await _shares(stack)
    assert at_kill[IDENTITY_2] > before[IDENTITY_2], "identity-2 took no call before it was killed"
    assert await stack.stop(IDENTITY_2, signal.SIGKILL) == -signal.SIGKILL

    await publish_all(stack, messages[70:140])
    await _received(stack, planned.job_id, 9_000)
    at_stop = await _shares(stack)
    assert at_stop[IMPORT_2] > before[IMPORT_2], "import-2 recorded no row before it was stopped"
    assert await stack.stop(IMPORT_2, signal.SIGTERM) == 0  # a graceful scale-in

    await publish_all(stack, messages[140:])  # the rest and the end: the job cannot be done before
    await stack.wait_job(planned.job_id, timeout=120)
    await check_exactly_once(stack, planned, campus.id)
    assert (await stack.health(IDENTITY), await stack.health(IMPORT)) == (SERVING, SERVING)
    assert not stack.services[IDENTITY_2].running and not stack.services[IMPORT_2].running
