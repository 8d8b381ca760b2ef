"""Consuming ``P.import.rows``: decode each message, hand it to the batcher, dead-letter the rest.

Messages are settled explicitly, never by aio-pika's ``process()``: the batcher acknowledges a
message only after the outcomes of all its rows are committed. First the publisher: the message's
``user_id`` (validated by RabbitMQ) must be a connector allowed for the routing key's school, else
CONNECTOR_NOT_ALLOWED before anything is read or created. A message that cannot be decoded, is
off-contract, or whose handling fails in a way that is not an outage (outages are waited out
inside) is copied (with confirms) to the dead-letter exchange with the reason headers, recorded in
the database (with the routing key's school, so only that school's job counts it), and only then
acknowledged: on its first delivery, never through a loop of broker redeliveries.
"""

from __future__ import annotations

import asyncio
import hashlib

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from import_service.adapters.amqp.acks import AckWindow
from import_service.adapters.amqp.codec import decode
from import_service.adapters.amqp.prefetch import PrefetchSizer
from import_service.domain.connectors import ConnectorPolicy
from import_service.domain.messages import ContractViolation, DeadReason, ImportMessage, RowsMessage
from import_service.service.ingest import Ingest
from import_service.service.ports import DeadLetter
from shared.amqp.publisher import AmqpPublisher
from shared.amqp.topology import Topology, declare, school_of
from shared.logging import get_logger

log = get_logger("import.consumer")
DEAD_REASON_HEADER = "x-rollcall-dead-reason"
DEAD_DETAIL_HEADER = "x-rollcall-dead-detail"
ROUTING_KEY_HEADER = "x-rollcall-routing-key"
CONTENT_TYPE_HEADER = "x-rollcall-content-type"
USER_ID_HEADER = "x-rollcall-user-id"


class _Delivery:
    """``ports.Delivery`` over an aio-pika message, acknowledged through its channel's window."""

    __slots__ = ("_consumer", "_message", "_window")

    def __init__(self, message: AbstractIncomingMessage, window: AckWindow, consumer: AmqpConsumer) -> None:
        self._message = message
        self._window = window
        self._consumer = consumer

    async def ack(self) -> None:
        self._window.ack(self._message)

    async def requeue(self) -> None:
        await self._window.requeue(self._message)

    async def dead_letter(self, reason: str, detail: str, job_id: str | None) -> None:
        school = school_of(self._message.routing_key or "")
        await self._consumer.dead_letter(self._message, reason, detail, job_id, school, self)


class AmqpConsumer:
    """Holds strong references to its channel, queue and consumer tag for its whole life."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        topology: Topology,
        ingest: Ingest,
        publisher: AmqpPublisher,
        prefetch: int,
        connectors: ConnectorPolicy,
    ) -> None:
        self._connection = connection
        self._connectors = connectors
        self._topology = topology
        self._ingest = ingest
        self._publisher = publisher
        self._sizer = PrefetchSizer(prefetch)
        self._resizing: asyncio.Task[None] | None = None
        self._consuming = False
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._window = AckWindow()
        self._window_channel: object = None

    async def start(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=False)
        self._queue = (await declare(self._channel, self._topology)).rows_queue
        self._consuming = True
        await self._subscribe(self._sizer.current)

    async def stop_consuming(self) -> None:
        """No new deliveries; those already received stay ours to settle until the channel closes."""
        self._consuming = False
        if self._resizing is not None:
            await asyncio.wait({self._resizing})
        await self._unsubscribe()

    async def _subscribe(self, prefetch: int) -> None:
        assert self._channel is not None and self._queue is not None
        await self._channel.set_qos(prefetch_count=prefetch)
        self._tag = await self._queue.consume(self._on_message, no_ack=False)
        log.info("import.consuming", queue=self._topology.rows_queue, prefetch=prefetch)

    async def _unsubscribe(self) -> None:
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:
                log.warning("import.cancel_failed", error=type(exc).__name__)
            self._tag = None

    def _observe(self, rows: int) -> None:
        """Re-subscribes with a prefetch fitted to the rows messages carry (see ``prefetch``)."""
        wanted = self._sizer.observe(rows)
        if wanted is not None and self._consuming and self._resizing is None:
            self._resizing = asyncio.create_task(self._resize(wanted))

    async def _resize(self, prefetch: int) -> None:
        """Deliveries made before the cancel still reach the callback (they precede CancelOk)."""
        try:
            await self._unsubscribe()
            while self._consuming and self._tag is None:
                try:
                    await self._subscribe(prefetch)
                except Exception as exc:  # the channel is being restored: try again shortly
                    log.warning("import.resubscribe_failed", error=type(exc).__name__)
                    await asyncio.sleep(1.0)
        finally:
            self._resizing = None

    async def close(self) -> None:
        """Closes the channel: every message not acknowledged by now goes back to the queue."""
        await self.stop_consuming()
        await self._window.wait_sent()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        delivery = _Delivery(message, self._window_of(message), self)
        routing = message.routing_key or ""
        school = school_of(routing)
        decoded: ImportMessage | None = None
        try:
            refusal = self._connectors.refusal(message.user_id, school)
            if refusal is not None:
                await self.dead_letter(
                    message, DeadReason.CONNECTOR_NOT_ALLOWED.value, refusal, None, None, delivery
                )
                return
            decoded = decode(message.body, message.content_type, routing)
            self._observe(len(decoded.rows) if isinstance(decoded, RowsMessage) else 1)
            if not self._ingest.accept_now(decoded, delivery):
                await self._ingest.accept(decoded, delivery)
        except ContractViolation as violation:
            await self.dead_letter(
                message, violation.reason.value, violation.detail, violation.job_id, school, delivery
            )
        except Exception as exc:  # not an outage (those are waited out inside): never a redelivery loop
            log.exception("import.message_failed", message_id=message.message_id)
            job_id = decoded.spec.job_id if decoded is not None else None
            detail = f"{type(exc).__name__} while taking the message"
            await self.dead_letter(
                message, DeadReason.PROCESSING_FAILED.value, detail, job_id, school, delivery
            )

    def _window_of(self, message: AbstractIncomingMessage) -> AckWindow:
        """The acknowledgement window of the channel the message came on (new after a reconnect)."""
        try:
            channel: object = message.channel
        except Exception:  # closed already: acks will fail whatever window they go through
            channel = None
        if channel is not self._window_channel:
            self._window, self._window_channel = AckWindow(), channel
        self._window.delivered(message)
        return self._window

    async def dead_letter(
        self,
        message: AbstractIncomingMessage,
        reason: str,
        detail: str,
        job_id: str | None,
        school_id: str | None,
        delivery: _Delivery,
    ) -> None:
        """Copies the message to the dead-letter exchange with the reason, records it (counted on
        ``job_id`` only if that job is of ``school_id``), then acknowledges it."""
        routing = message.routing_key or ""
        content_type = message.content_type or ""
        headers = {
            DEAD_REASON_HEADER: reason,
            DEAD_DETAIL_HEADER: detail[:500],
            ROUTING_KEY_HEADER: routing[:255],
            CONTENT_TYPE_HEADER: content_type[:255],
        }
        if message.user_id:
            headers[USER_ID_HEADER] = message.user_id[:255]
        letter = DeadLetter(
            dedupe_key=_dedupe_key(message),
            job_id=job_id,
            reason=reason,
            detail=detail,
            routing_key=routing,
            content_type=content_type,
            message_id=message.message_id or "",
            body=message.body,
            school_id=school_id,
        )
        try:
            await self._publisher.publish_dead(
                message.body, content_type, routing, letter.message_id, headers
            )
            await self._ingest.refuse(letter)
        except Exception:
            log.exception("import.dead_letter_failed", reason=letter.reason)
            await _settle_quietly(delivery, requeue=True)
            return
        log.warning("import.dead_lettered", reason=letter.reason, job_id=letter.job_id, detail=letter.detail)
        await _settle_quietly(delivery, requeue=False)


def _dedupe_key(message: AbstractIncomingMessage) -> str:
    if message.message_id:
        return f"id:{message.message_id[:200]}"
    digest = hashlib.sha256()
    for part in ((message.routing_key or "").encode(), (message.content_type or "").encode(), message.body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f"sha256:{digest.hexdigest()}"


async def _settle_quietly(delivery: _Delivery, *, requeue: bool) -> None:
    """Ack or requeue; a closed channel means the broker redelivers anyway."""
    try:
        await (delivery.requeue() if requeue else delivery.ack())
    except Exception as exc:
        log.warning("import.settle_failed", error=type(exc).__name__)
