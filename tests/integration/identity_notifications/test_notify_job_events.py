"""Held jobs and jobs completed with failed rows, told to the school's notify_emails from events the
test publishes to the events exchange exactly as the import service's relay does (protobuf and JSON
bodies, CloudEvents headers, message_id = event id), consumed by the courier's consumer from its
durable quorum queue; a repeated event and an undecodable message are acknowledged and mail nothing."""

from __future__ import annotations

import uuid

from identity_service.adapters.amqp.job_events import JobEventsConsumer
from identity_service.domain.mail import MailKind
from identity_service.service.courier import Courier
from shared.events.publisher import JSON, PROTOBUF, encode
from tests.integration.identity.identity_support import IdentityClient
from tests.integration.identity_mail.mail_helpers import SmtpServer, wait_for
from tests.integration.identity_notifications.notify_support import (
    RelayStandIn,
    consuming,
    deliver,
    job_event,
    mails_to,
    notify_campus,
    outbox_count,
    running,
    subject_of,
    text_of,
    wait_outbox,
)


async def handled(identity: IdentityClient, event_id: str) -> None:
    async def recorded() -> bool:
        return bool(
            await identity.count("SELECT count(*) FROM notification_events WHERE event_id = $1", event_id)
        )

    await wait_for(recorded, timeout=15, what=f"event {event_id} handled")


async def test_a_held_job_and_a_job_with_failed_rows_are_mailed(
    identity: IdentityClient,
    consumer: JobEventsConsumer,
    relay: RelayStandIn,
    courier: Courier,
    mail_server: SmtpServer,
) -> None:
    campus, notify = await notify_campus(identity)
    school = campus.school
    held = job_event(school.id, "import_job.held", job_id="sis-2026-12-01")
    failed = job_event(school.id, "import_job.completed", job_id="sis-2026-12-02", failed=3)
    clean = job_event(school.id, "import_job.completed", job_id="sis-2026-12-03")
    async with running(consumer.run):
        await consuming(consumer)
        await relay.publish([held])  # protobuf
        await relay.publish([clean, failed], content_type=JSON)
        await wait_outbox(identity, school.id, MailKind.JOB_HELD, 2)
        await wait_outbox(identity, school.id, MailKind.JOB_FAILED_ROWS, 2)
    await deliver(courier)

    for address in notify:
        held_mail, failed_mail = mails_to(mail_server, address)
        assert subject_of(held_mail) == f"{school.name}: import job sis-2026-12-01 is held for review"
        body = text_of(held_mail)
        assert '"students.csv"' in body and "sensitive changes: 6 students" in body
        assert "archives:          2 students" in body and "20.0 % of the school's 40 students" in body
        assert (
            "rollcall import hold sis-2026-12-01" in body and "rollcall import discard sis-2026-12-01" in body
        )
        assert "rollcall import release sis-2026-12-01 --wait" in body
        assert (
            subject_of(failed_mail) == f"{school.name}: import job sis-2026-12-02 finished with 3 failed rows"
        )
        summary = text_of(failed_mail)
        assert "40 rows, 3 of them failed" in summary and "created 30, updated 0, unchanged 7" in summary
        assert "rollcall import failed sis-2026-12-02 --csv failed.csv" in summary
        assert "rollcall import retry sis-2026-12-02 --wait" in summary
    assert not any("sis-2026-12-03" in subject_of(m) for m in mail_server.collector.messages)


async def test_a_repeated_or_undecodable_message_is_acknowledged_and_mails_nothing(
    identity: IdentityClient, consumer: JobEventsConsumer, relay: RelayStandIn
) -> None:
    campus, _ = await notify_campus(identity, addresses=1)
    school_id = campus.school.id
    held = job_event(school_id, "import_job.held")
    marker = job_event(school_id, "import_job.completed", failed=1)
    async with running(consumer.run):
        await consuming(consumer)
        await relay.publish([held])
        await handled(identity, held.id)
        await relay.publish([held], content_type=JSON)  # the relay publishing it again (at least once)
        await relay.publish_raw(b"\x00\xffnot an event", PROTOBUF, "import_job.held", "junk-1")
        await relay.publish_raw(b"{}", "text/csv", "import_job.completed", "junk-2")
        no_school = job_event("", "import_job.held")
        await relay.publish_raw(encode(no_school, PROTOBUF), PROTOBUF, "import_job.held", no_school.id)
        await relay.publish([marker])  # prefetch 1: handled after everything before it
        await handled(identity, marker.id)
        await wait_for(lambda: _empty(relay), timeout=10, what="the queue drained, nothing requeued")
    assert await outbox_count(identity, school_id, MailKind.JOB_HELD) == 1
    assert await outbox_count(identity, school_id, MailKind.JOB_FAILED_ROWS) == 1
    assert await identity.count("SELECT count(*) FROM notification_events WHERE event_id = $1", held.id) == 1


async def test_events_published_while_no_courier_runs_wait_for_it(
    identity: IdentityClient, consumer: JobEventsConsumer, relay: RelayStandIn
) -> None:
    campus, _ = await notify_campus(identity, addresses=1)
    async with running(consumer.run):  # the courier declares its durable queue once ...
        await consuming(consumer)
    events = [
        job_event(campus.school.id, "import_job.held", job_id=f"away-{uuid.uuid4().hex[:6]}")
        for _ in range(3)
    ]
    await relay.publish(events)  # ... and events published while it is away stay there
    assert await relay.queue_depth() == 3
    async with running(consumer.run):
        await consuming(consumer)
        await wait_outbox(identity, campus.school.id, MailKind.JOB_HELD, 3)


async def _empty(relay: RelayStandIn) -> bool:
    return await relay.queue_depth() == 0
