"""F7 (operations.md, "Reliability targets"): a RabbitMQ cluster of 3 nodes, the rows queue's
leader node stopped mid-job, then started again.

Three extra nodes of the installed RabbitMQ run on their own ports (tests/faults/rabbit_cluster.py;
the machine's own broker is not touched). The services get all three URLs in ``ROLLCALL_AMQP_URL``
and connect to the first; the rows queue is a quorum queue, declared without
``x-quorum-initial-group-size`` so it has a replica on each of the three nodes. Its leader is
stopped while a 10k-row job is under way: the rest of the file is published to a surviving node,
the services reconnect to another node by themselves (no restart), the job keeps going while the
node is away and completes once it is back, every row applied exactly once.

It reports (``fault_report``) the rows, the fault (how long the leader node was stopped), the rows
lost and applied twice (the checker's counts) and the time to recover: from the leader's stop
(``rabbitmqctl stop`` issued) to the first row identity applied again in a transaction begun after
it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.system.system_support import new_campus
from tests.faults.fault_report import RecoveryClock, report
from tests.faults.fault_support import PatientPublisher, checked_exactly_once, plan_file
from tests.faults.rabbit_cluster import available, broker_ports_of, node_running, rabbit_cluster
from tests.process_stack import IDENTITY, IMPORT, SERVING, eventually, process_stack

pytestmark = pytest.mark.faults


async def test_f7_quorum_leader_node_stopped_mid_job_services_fail_over_and_nothing_is_lost(
    request: pytest.FixtureRequest, pg_server_url: str, amqp_prefix: str
) -> None:
    if not available():
        pytest.skip("F7 starts three RabbitMQ nodes of its own; no RabbitMQ is installed here")
    started = time.monotonic()
    with rabbit_cluster(3) as cluster:
        first = cluster.nodes[0]
        async with process_stack(
            pg_server_url,
            first.url,
            f"{amqp_prefix}_f7",
            extra_env={"ROLLCALL_AMQP_URL": cluster.urls},
            relays=True,
        ) as stack:
            members = cluster.members(stack.rows_queue)
            assert sorted(members) == sorted(n.name for n in cluster.nodes), members  # 3 replicas
            leader = cluster.quorum_leader(stack.rows_queue)
            survivor = next(n for n in cluster.nodes if n is not leader)
            campus = await new_campus(stack)
            planned = await plan_file(stack, campus, 10_000)
            messages = planned.messages(per_message=100)
            publisher = PatientPublisher(survivor.url, stack.exchange)
            clock = RecoveryClock(stack.identity_db_url, planned.job_id)
            deadline = time.monotonic() + 240
            try:
                for number, message in enumerate(messages[:30]):
                    await publisher.publish(message, f"{planned.job_id}-{number}", deadline)

                async def under_way() -> bool:
                    job = await stack.get_job(planned.job_id)
                    return job is not None and job.rows_received >= 300

                await eventually(under_way, timeout=60, what="the job under way")
                on_leader = [
                    name
                    for name, service in stack.services.items()
                    if leader.port in broker_ports_of(service.pid, cluster.nodes)
                ]
                fault_at = clock.fault()
                await asyncio.to_thread(cluster.stop, leader)
                stopped_at = time.monotonic()
                stop_took = stopped_at - fault_at
                job = await stack.get_job(planned.job_id)
                assert job is not None and job.rows_received < len(planned.rows), "stopped too late"
                received_at_stop = job.rows_received
                for number, message in enumerate(messages[30:], start=30):
                    await publisher.publish(message, f"{planned.job_id}-{number}", deadline)

                new_leader = await asyncio.to_thread(_leader_other_than, cluster, stack.rows_queue, leader)

                async def progressing() -> bool:
                    job = await stack.get_job(planned.job_id)
                    return job is not None and job.rows_received > received_at_stop + 1000

                await eventually(progressing, timeout=120, what="rows consumed with the leader node away")
                await stack.wait_health(IMPORT, SERVING, timeout=60)
                await stack.wait_health(IDENTITY, SERVING, timeout=60)

                survivors = [n for n in cluster.nodes if n is not leader]

                async def moved() -> list[str]:
                    """The services that were on the stopped node, now on a surviving one (all of them)."""
                    return [n for n in on_leader if broker_ports_of(stack.services[n].pid, survivors)]

                moved_all = lambda: _all(moved, len(on_leader))  # noqa: E731
                await eventually(moved_all, timeout=60, what="the services on the surviving nodes")
                stopped_seconds = time.monotonic() - fault_at  # from the stop issued to the start
                await asyncio.to_thread(cluster.start, leader)
                assert node_running(leader)
                recover_seconds = await clock.seconds(timeout=120)
            finally:
                await clock.close()
                await publisher.close()
            await stack.wait_job(planned.job_id, timeout=240)
            checked = await checked_exactly_once(stack, planned, campus.id)
            for name, service in stack.services.items():
                assert service.starts == 1 and service.running, name  # reconnected by themselves
    assert IMPORT in on_leader, on_leader  # the consumer itself failed over (connected to the leader)
    report(
        request,
        f"F7: rows {checked.rows}, faults 1 (leader node {leader.name.partition('_')[0]} stopped "
        f"{stopped_seconds:.1f} s), lost {checked.lost}, applied twice {checked.applied_twice}, "
        f"time to recover {recover_seconds:.1f} s",
        f"leader {leader.name} -> {new_leader}, services moved {on_leader}, "
        f"rabbitmqctl stop took {stop_took:.1f} s, total {time.monotonic() - started:.1f} s",
    )


async def _all(check, count: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await check()) == count


def _leader_other_than(cluster, queue: str, old) -> str:  # type: ignore[no-untyped-def]
    """The new leader the two surviving replicas elected (waits for the election)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            leader = cluster.quorum_leader(queue)
            if leader is not old:
                return leader.name
        except (LookupError, RuntimeError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{queue}: no new leader elected")
        time.sleep(0.5)
