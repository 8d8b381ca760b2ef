"""Helpers of the notification tests: a clock the tests move, the import relay's way of publishing
job events, a slow SMTP server, and reading what was mailed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import aio_pika
from google.protobuf import field_mask_pb2

from identity_service.adapters.amqp.job_events import JobEventsConsumer
from identity_service.service.courier import Courier, CourierConfig
from shared.amqp.topology import Topology, declare_events
from shared.events.publisher import PROTOBUF, EventPublisher
from shared.proto.rollcall.events.v1 import events_pb2 as events_pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.importer.v1 import import_service_pb2 as import_pb
from tests.integration.identity.identity_support import Campus, IdentityClient, unique
from tests.integration.identity_mail.mail_helpers import Collector, SmtpServer, wait_for

COURIER_CONFIG = CourierConfig(
    poll_interval=0.05, batch_size=5, send_timeout=5, lease_seconds=30, max_attempts=8
)
IMPORT_SOURCE = "//rollcall/import"


class Clock:
    """The digest's clock: real time plus what the test adds."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


class SlowCollector(Collector):
    """Accepts each message after ``delay`` seconds (a courier is still busy when it is stopped)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def mails_to(server: SmtpServer, address: str) -> list[Message]:
    return [m for m in server.collector.messages if str(m["To"]).lower() == address.lower()]


def subject_of(message: Message) -> str:
    """The subject as a reader sees it (a long one is folded on the wire)."""
    return " ".join(str(message["Subject"]).split())


def text_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


async def deliver(courier: Courier) -> None:
    """Let the courier send everything that is due now (bounded)."""
    for _ in range(200):
        if await courier.run_once() == 0:
            return
    raise AssertionError("the courier kept finding mail")


@asynccontextmanager
async def running(task_of: Any) -> AsyncIterator[asyncio.Event]:
    """``task_of(stop)`` (a courier's or a consumer's ``run``) in the background until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(task_of(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


async def notify_campus(identity: IdentityClient, *, addresses: int = 2) -> tuple[Campus, list[str]]:
    """A fresh school whose staff set who is told (``addresses`` of them)."""
    campus = await identity.new_campus()
    notify = [f"{unique('office')}@{campus.domain}" for _ in range(addresses)]
    await update_school(
        identity, campus, res.School(id=campus.school.id, notify_emails=notify), "notify_emails"
    )
    return campus, notify


async def update_school(
    identity: IdentityClient, campus: Campus, school: res.School, *paths: str
) -> res.School:
    request = pb.UpdateSchoolRequest(school=school, update_mask=field_mask_pb2.FieldMask(paths=list(paths)))
    return await identity.stub.UpdateSchool(request, metadata=campus.staff_md)


async def outbox_count(identity: IdentityClient, school_id: str, kind: str) -> int:
    return await identity.count(
        "SELECT count(*) FROM outbox_messages WHERE school_id = $1 AND kind = $2", school_id, kind
    )


async def wait_outbox(identity: IdentityClient, school_id: str, kind: str, expected: int) -> None:
    async def enough() -> bool:
        return await outbox_count(identity, school_id, kind) >= expected

    await wait_for(enough, timeout=15, what=f"{expected} {kind} mail(s) queued")


def job_event(
    school_id: str,
    event_type: str,
    *,
    job_id: str | None = None,
    failed: int = 0,
    event_id: str | None = None,
) -> events_pb.Event:
    """An ``import_job.*`` event as the import service's relay encodes it."""
    job = import_pb.ImportJob(
        job_id=job_id or unique("sis-"),
        school_id=school_id,
        source_name="students.csv",
        total_rows=40,
        rows_received=40,
    )
    if event_type == "import_job.held":
        job.state = import_pb.IMPORT_JOB_STATE_HELD
        job.hold.sensitive_changes, job.hold.archives = 6, 2
        job.hold.school_students, job.hold.threshold_percent = 40, 10
        job.counts.updated = 6
    else:
        job.state = import_pb.IMPORT_JOB_STATE_COMPLETED
        job.counts.created, job.counts.unchanged, job.counts.failed = 30, 10 - failed, failed
    event = events_pb.Event(
        id=event_id or str(uuid.uuid4()), type=event_type, subject=job.job_id, sequence=1, client="importer"
    )
    event.time.FromDatetime(datetime.now(UTC))
    event.job.job.CopyFrom(job)
    return event


class RelayStandIn:
    """Publishes to ``P.events`` exactly as the relay does (``shared.events.publisher``: persistent,
    confirmed, CloudEvents headers, message_id = event id, routing key = type)."""

    def __init__(self, amqp_url: str, topology: Topology) -> None:
        self._url = amqp_url
        self._topology = topology
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def __aenter__(self) -> RelayStandIn:
        self._connection = await aio_pika.connect(self._url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self.exchange = await declare_events(self._channel, self._topology)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._channel is not None and self._connection is not None
        await self._channel.queue_delete(f"{self._topology.prefix}.identity.notifications")
        await self._channel.exchange_delete(self._topology.events_exchange)
        await self._connection.close()

    async def publish(self, events: Sequence[events_pb.Event], content_type: str = PROTOBUF) -> None:
        await EventPublisher(self.exchange, IMPORT_SOURCE, content_type).publish(events)

    async def publish_raw(self, body: bytes, content_type: str, routing_key: str, message_id: str) -> None:
        message = aio_pika.Message(
            body,
            content_type=content_type,
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.exchange.publish(message, routing_key=routing_key)

    async def queue_depth(self) -> int:
        assert self._channel is not None
        queue = await self._channel.declare_queue(
            f"{self._topology.prefix}.identity.notifications", passive=True
        )
        return int(queue.declaration_result.message_count or 0)


async def consuming(consumer: JobEventsConsumer) -> None:
    await asyncio.wait_for(consumer.ready.wait(), timeout=15)
