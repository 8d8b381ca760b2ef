"""F8 (operations.md, "Reliability targets"): PostgreSQL fails over to its standby mid-job.

A primary with a streaming standby of its own (``pg_standby``: this machine's server binaries, a
temporary data directory each, nothing shared with the machine's PostgreSQL). Both services get
the multi-host DSN ``postgresql://…@h:primary,h:standby/db?target_session_attrs=read-write``. A
10k-row job is under way when the primary is stopped at once (``-m immediate``): both services
report NOT_SERVING (the standby is read-only, so no connection is accepted), the standby is
promoted, and both find the new primary by themselves (SERVING again, no restart), the job
completes and every row has exactly one outcome (``checked_exactly_once``).

It reports (``fault_report``) the rows, the fault, the rows lost and applied twice (the checker's
counts) and the time to recover: from the primary stopped (``pg_ctl stop -m immediate`` returned)
to the first row identity applied again, on the promoted standby.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from tests.e2e.system.system_support import new_campus
from tests.faults.fault_report import RecoveryClock, report
from tests.faults.fault_support import HealthWatch, checked_exactly_once, job_under_way, publish_all
from tests.faults.pg_standby import available, pg_pair
from tests.process_stack import IDENTITY, IMPORT, NOT_SERVING, SERVING, eventually, process_stack

pytestmark = pytest.mark.faults


async def test_f8_primary_stopped_mid_job_standby_promoted_services_follow(
    request: pytest.FixtureRequest, amqp_url: str, amqp_prefix: str
) -> None:
    if (why := available()) is not None:
        pytest.skip(f"F8 starts a PostgreSQL primary and standby: {why}")
    short = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:6]
    async with (
        pg_pair() as pair,
        process_stack(pair.multi_host_url(), amqp_url, f"{amqp_prefix}_f{short}") as stack,
    ):
        assert "target_session_attrs=read-write" in stack.identity_db_url
        assert "target_session_attrs=read-write" in stack.import_db_url
        campus = await new_campus(stack)
        planned, messages = await job_under_way(stack, campus)
        watch = HealthWatch(stack, (IDENTITY, IMPORT))

        await watch(SERVING)
        before = await stack.get_job(planned.job_id)
        clock = RecoveryClock(stack.identity_db_url, planned.job_id)
        try:
            await pair.stop_primary()
            clock.fault()
            stopped = time.monotonic()
            await publish_all(stack, messages[40:])  # the broker takes the rest of the file meanwhile
            await eventually(lambda: watch(NOT_SERVING), timeout=30, what="both services NOT_SERVING")
            promote_seconds = await pair.promote_standby()
            await eventually(lambda: watch(SERVING), timeout=90, what="both services SERVING again")
            serving_again = time.monotonic() - stopped
            recover_seconds = await clock.seconds(timeout=120)
        finally:
            await clock.close()

        for name, states in watch.seen.items():
            assert states[0] == SERVING and NOT_SERVING in states and states[-1] == SERVING, (name, states)
            assert stack.services[name].starts == 1 and stack.services[name].running  # no restart needed
        async with stack.import_db() as db:  # the stack's databases now live on the promoted standby
            assert await db.fetchval("SELECT inet_server_port()") == pair.standby_port
            assert not await db.fetchval("SELECT pg_is_in_recovery()")
        await stack.wait_job(planned.job_id, timeout=180)
        checked = await checked_exactly_once(stack, planned, campus.id)
        assert before is not None and before.rows_received < checked.job.total_rows  # failed over mid-job
    report(
        request,
        f"F8: rows {checked.rows}, faults 1 (primary stopped at row ~{before.rows_received}, "
        f"standby promoted in {promote_seconds:.1f} s), lost {checked.lost}, "
        f"applied twice {checked.applied_twice}, time to recover {recover_seconds:.1f} s",
        f"both services SERVING again {serving_again:.1f} s after the primary stopped",
    )
