"""Every notification mail is sent exactly once across a courier restart: a courier stopped mid-way
through a mixed backlog (waiting, approved, digest, held, failed rows) and another started after it
send each mail once; an event the relay publishes again after the consumer restarted mails nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import asyncpg
import pytest

from identity_service.adapters.amqp.job_events import JobEventsConsumer
from identity_service.bootstrap import build_courier
from identity_service.domain.mail import MailKind
from identity_service.service.pending_digest import PendingDigest
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.settings import Settings
from tests.integration.identity.identity_support import IdentityClient
from tests.integration.identity_mail.mail_helpers import SmtpServer, wait_for
from tests.integration.identity_notifications.notify_support import (
    COURIER_CONFIG,
    Clock,
    RelayStandIn,
    SlowCollector,
    consuming,
    job_event,
    notify_campus,
    outbox_count,
    running,
    wait_outbox,
)

STUDENTS = 8


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.collector = SlowCollector(delay=0.08)
    server.start()
    yield server
    server.stop()


async def school_mail(identity: IdentityClient, school_id: str, status: str) -> int:
    return await identity.count(
        "SELECT count(*) FROM outbox_messages WHERE school_id = $1 AND status = $2", school_id, status
    )


async def test_each_mail_is_sent_once_across_a_courier_restart(
    identity: IdentityClient,
    notify_settings: Settings,
    notify_db_url: str,
    digest: PendingDigest,
    clock: Clock,
    consumer_factory: Callable[[], JobEventsConsumer],
    relay: RelayStandIn,
    slow_smtp: SmtpServer,
) -> None:
    campus, notify = await notify_campus(identity)
    school_id = campus.school.id
    students = [await identity.sign_up(campus) for _ in range(STUDENTS)]  # 8 waiting mails
    await identity.stub.BatchApproveStudents(  # 8 approved mails
        pb.BatchApproveStudentsRequest(school_id=school_id, user_ids=[s.id for s in students]),
        metadata=campus.staff_md,
    )
    await identity.sign_up(campus)  # one more waiting mail; still pending for the digest
    clock.advance(minutes=5)
    await digest.run_once()  # 2 digest mails
    held = job_event(school_id, "import_job.held")
    failed = job_event(school_id, "import_job.completed", failed=2)
    first_consumer = consumer_factory()
    async with running(first_consumer.run):
        await consuming(first_consumer)
        await relay.publish([held, failed])
        await wait_outbox(identity, school_id, MailKind.JOB_FAILED_ROWS, 2)  # 2 + 2 job mails
    total = 2 * STUDENTS + 1 + 2 + 4
    assert await school_mail(identity, school_id, "PENDING") == total

    settings = notify_settings.model_copy(update={"smtp_port": slow_smtp.port})
    pools = [await asyncpg.create_pool(notify_db_url, min_size=1, max_size=3) for _ in range(2)]
    try:
        first = build_courier(pools[0], settings, COURIER_CONFIG)
        async with running(first.run):
            await wait_for(lambda: _sent_at_least(identity, school_id, 5), timeout=30, what="5 mails sent")
        sent_by_first = await school_mail(identity, school_id, "SENT")
        assert 5 <= sent_by_first < total  # stopped mid-way: the rest still waits, none leased
        leased = await identity.count(
            "SELECT count(*) FROM outbox_messages WHERE school_id = $1 AND locked_until > now()", school_id
        )
        assert leased == 0

        second = build_courier(pools[1], settings, COURIER_CONFIG)
        async with running(second.run):
            await wait_for(
                lambda: _sent_at_least(identity, school_id, total), timeout=60, what="every mail sent"
            )
    finally:
        for pool in pools:
            await pool.close()

    messages = slow_smtp.collector.messages
    ids = [str(m["Message-ID"]) for m in messages]
    assert len(ids) == len(set(ids))  # no mail twice
    for address in notify:  # the digest, the held job, the failed rows: once each
        assert len([m for m in messages if str(m["To"]) == address]) == 3
    for student in students:  # waiting, then approved
        assert len([m for m in messages if str(m["To"]) == student.email]) == 2

    relay_again = job_event(school_id, "import_job.held", event_id=held.id, job_id=held.job.job.job_id)
    second_consumer = consumer_factory()
    marker = job_event(school_id, "import_job.completed", failed=1)
    async with running(second_consumer.run):
        await consuming(second_consumer)
        await relay.publish([relay_again, marker])  # the relay publishes the held event once more
        await wait_outbox(identity, school_id, MailKind.JOB_FAILED_ROWS, 4)
    assert await outbox_count(identity, school_id, MailKind.JOB_HELD) == 2


async def _sent_at_least(identity: IdentityClient, school_id: str, count: int) -> bool:
    return await school_mail(identity, school_id, "SENT") >= count
