"""The courier's consumer of import-job events: held jobs and jobs completed with failed rows become
mail to the school's notify_emails (``service/notifications.job_event``).

The import service's relay publishes ``rollcall.events.v1.Event`` messages to the topic exchange
``P.events`` (routing key = event type, ``message_id`` = event id, body protobuf or JSON by
``content_type``; api.md "Events"). This consumer owns the durable quorum queue
``P.identity.notifications``, bound to ``import_job.held`` and ``import_job.completed``, so events
published while no courier runs wait there. Each message:

- is decoded here (``decode_job_event``) into a ``JobNotice``; a message that cannot be (an unknown
  content type, a body that does not parse, no event id, no job or school) is logged and
  acknowledged: it never comes back;
- goes to the use case, which queues its mails in one transaction with the event id (a unique key),
  so a repeat queues nothing; the message is acknowledged only after that commit;
- while the database cannot be reached, is retried here with capped backoff, unacknowledged (it
  returns to the queue if the courier stops meanwhile); any other failure is logged and the message
  acknowledged (no redelivery loop). The queue's delivery limit (20) drops a message that kills the
  process every time it is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from identity_service.domain.notifications import (
    JobCounts,
    JobEventType,
    JobHoldFigures,
    JobNotice,
)
from shared.amqp.connect import connect_robust_any
from shared.amqp.topology import Topology, declare_events
from shared.events.publisher import JSON, PROTOBUF, decode
from shared.logging import get_logger
from shared.pg import is_unreachable
from shared.proto.rollcall.events.v1 import events_pb2 as events_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as import_pb

log = get_logger("notifications.consumer")

BINDINGS = (JobEventType.HELD.value, JobEventType.COMPLETED.value)
DELIVERY_LIMIT = 20
EVENT_ID_MAX = 200
PREFETCH = 16
RETRY_CAP_SECONDS = 30.0

Handler = Callable[[JobNotice], Awaitable[int]]


def notifications_queue(topology: Topology) -> str:
    """``P.identity.notifications``: the courier's queue of job events."""
    return f"{topology.prefix}.identity.notifications"


def queue_arguments() -> dict[str, object]:
    return {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT}


class UndecodableEvent(ValueError):
    """A message that is no job event this consumer can act on (``str``: why, no content)."""


def decode_job_event(body: bytes, content_type: str, message_id: str, routing_key: str) -> JobNotice:
    """The job event a message carries; ``UndecodableEvent`` when it carries none."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (PROTOBUF, JSON):
        raise UndecodableEvent(f"content type {media[:60]!r} is neither {PROTOBUF} nor {JSON}")
    try:
        event = decode(body, media)
    except (DecodeError, json_format.ParseError, ValueError) as exc:  # UnicodeDecodeError is one
        raise UndecodableEvent(f"the body is not a rollcall.events.v1.Event ({type(exc).__name__})") from None
    event_id = event.id or message_id
    if not event_id or len(event_id) > EVENT_ID_MAX:
        raise UndecodableEvent("no event id (or one over 200 characters)")
    event_type = event.type or routing_key
    if event_type not in BINDINGS:
        raise UndecodableEvent(f"not an import job event ({event_type[:60]!r})")
    if event.WhichOneof("payload") != "job":
        raise UndecodableEvent("the event carries no job")
    return _notice(event_id, event_type, event)


def _notice(event_id: str, event_type: str, event: events_pb.Event) -> JobNotice:
    job = event.job.job
    if not job.school_id:
        raise UndecodableEvent("the job names no school")
    counts = job.counts
    hold = None
    if job.HasField("hold"):
        figures = job.hold
        hold = JobHoldFigures(
            figures.sensitive_changes, figures.archives, figures.school_students, figures.threshold_percent
        )
    return JobNotice(
        event_id=event_id,
        event_type=event_type,
        job_id=job.job_id or event.subject,
        school_id=job.school_id,
        source_name=job.source_name,
        held=job.state == import_pb.IMPORT_JOB_STATE_HELD,
        completed=job.state == import_pb.IMPORT_JOB_STATE_COMPLETED,
        dry_run=job.dry_run,
        total_rows=job.total_rows,
        counts=JobCounts(
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            skipped=counts.skipped,
            failed=counts.failed,
            approved=counts.approved,
            archived=counts.archived,
            deleted=counts.deleted,
        ),
        hold=hold,
        parent_job_id=job.parent_job_id,
        undo_of_job_id=job.undo_of_job_id,
    )


class JobEventsConsumer:
    """Consumes ``P.identity.notifications`` until stopped; reconnects (aio-pika's robust connection
    restores the queue, its bindings and the subscription)."""

    def __init__(self, amqp_url: str, topology: Topology, handle: Handler, prefetch: int = PREFETCH) -> None:
        self._url = amqp_url
        self._topology = topology
        self._handle = handle
        self._prefetch = prefetch
        self._stop = asyncio.Event()
        self._connection: AbstractRobustConnection | None = None
        self.ready = asyncio.Event()  # set once the queue is declared, bound and consumed

    @property
    def queue(self) -> str:
        return notifications_queue(self._topology)

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (retrying while the broker is away), consume, and close when ``stop`` is set."""
        self._stop = stop
        delay = 1.0
        while not stop.is_set():
            try:
                await self._start()
                break
            except Exception as exc:  # the broker is not there yet: the courier keeps sending mail
                log.warning("notifications.connect_failed", error=type(exc).__name__, retry_in_seconds=delay)
                await self._close()
                await _wait(stop, delay)
                delay = min(RETRY_CAP_SECONDS, delay * 2)
        try:
            await stop.wait()
        finally:
            await self._close()

    async def _start(self) -> None:
        self._connection = await connect_robust_any(self._url, timeout=10)
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._prefetch)
        exchange = await declare_events(channel, self._topology)
        queue = await channel.declare_queue(self.queue, durable=True, arguments=queue_arguments())
        for key in BINDINGS:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=False)
        self.ready.set()
        log.info("notifications.consuming", queue=self.queue, bindings=list(BINDINGS))

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.ready.clear()
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception as exc:
                log.warning("notifications.close_failed", error=type(exc).__name__)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or ""
        try:
            notice = decode_job_event(
                message.body, message.content_type or "", message_id, message.routing_key or ""
            )
        except UndecodableEvent as bad:
            log.warning("notifications.undecodable_event", message_id=message_id[:200], reason=str(bad))
            await _settle(message)
            return
        if await self._handled(notice):
            await _settle(message)

    async def _handled(self, notice: JobNotice) -> bool:
        """Run the use case until it committed (True) or failed for good (True: logged, dropped);
        False when stopping first (the message stays unacknowledged and returns to the queue)."""
        delay = 0.5
        while True:
            try:
                await self._handle(notice)
                return True
            except Exception as exc:
                if not is_unreachable(exc):
                    log.error(
                        "notifications.event_failed",
                        event_id=notice.event_id,
                        job_id=notice.job_id,
                        error=f"{type(exc).__name__}: {exc}"[:300],
                    )
                    return True
                log.warning(
                    "notifications.database_unreachable", event_id=notice.event_id, retry_in_seconds=delay
                )
            if self._stop.is_set():
                return False
            await _wait(self._stop, delay)
            delay = min(RETRY_CAP_SECONDS, delay * 2)


async def _settle(message: AbstractIncomingMessage) -> None:
    try:
        await message.ack()
    except Exception as exc:  # the channel closed meanwhile: the broker delivers it again
        log.warning("notifications.ack_failed", error=type(exc).__name__)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
