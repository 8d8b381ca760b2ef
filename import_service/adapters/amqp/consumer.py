"""Consuming ``P.import.rows``: each delivery translated for ``Ingest.receive``, settled as it says.

The consumer holds the subscription (channel, queue, consumer tag, a prefetch sized by rows) and
nothing else: a delivery becomes the service's ``Delivery`` (envelope, routing key's school, and
``ack``/``requeue`` through the channel's acknowledgement window), and ``Ingest.receive`` decides
accept, dead-letter or wait. Messages are settled explicitly: the service acknowledges a message only
after the outcomes of all its rows are committed.

The subscription is made on the robust channel's aiormq channel (``basic_consume``), not through
aio-pika's ``Queue.consume``: aio-pika wraps every delivery in an ``IncomingMessage`` (a dozen
properties decoded whether read or not) and a second task, about a quarter of the consumer's CPU
for a one-row message (issue 12, docs/performance.md). aio-pika still owns the connection and the
channel — reconnecting to the next broker, reopening the channel, restoring its QoS — and the
consumer subscribes again on the reopened channel (its ``reopen_callbacks``) and when the broker
cancels the subscription (``basic.cancel``: the queue deleted or moved).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq import spec
from aiormq.abc import DeliveredMessage

from import_service.adapters.amqp.acks import AckChannel, AckWindow
from import_service.adapters.amqp.prefetch import PrefetchSizer
from import_service.service.ingest import Ingest
from shared import tracing
from shared.amqp.topology import Topology, declare, school_of
from shared.logging import get_logger

log = get_logger("import.consumer")
RESUBSCRIBE_PAUSE_SECONDS = 1.0


class _Delivery:
    """``ports.Delivery`` over an aiormq delivery, acknowledged through its channel's window."""

    __slots__ = (
        "_tag",
        "_window",
        "body",
        "content_type",
        "headers",
        "message_id",
        "routing_key",
        "school_id",
        "trace_context",
        "user_id",
    )

    def __init__(self, message: DeliveredMessage, tag: int, window: AckWindow) -> None:
        properties = message.header.properties
        self._tag = tag
        self._window = window
        self.body = message.body
        self.content_type = properties.content_type or ""
        self.routing_key = message.routing_key or ""
        self.school_id = school_of(self.routing_key)
        self.message_id = properties.message_id or ""
        self.user_id = properties.user_id
        self.headers = properties.headers
        self.trace_context: object = None  # the delivery's span (tracing on): batches link to it

    async def ack(self) -> None:
        self._window.ack(self._tag)

    async def requeue(self) -> None:
        await self._window.requeue(self._tag)


class AmqpConsumer:
    """Holds strong references to its channel and consumer tag for its whole life."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        topology: Topology,
        ingest: Ingest,
        prefetch: int,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._ingest = ingest
        self._sizer = PrefetchSizer(prefetch)
        self._resizing: asyncio.Task[None] | None = None
        self._consuming = False
        self._channel: AbstractRobustChannel | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None  # the channel ``_tag`` is on
        self._tag: str | None = None
        self._window: AckWindow | None = None

    async def start(self) -> None:
        channel = await self._connection.channel(publisher_confirms=False)
        assert isinstance(channel, AbstractRobustChannel)
        self._channel = channel
        await declare(channel, self._topology)
        channel.reopen_callbacks.add(self._reopened)
        self._consuming = True
        await self._subscribe(self._sizer.current)

    async def stop_consuming(self) -> None:
        """No new deliveries; those already received stay ours to settle until the channel closes."""
        self._consuming = False
        if self._resizing is not None:
            await asyncio.wait({self._resizing})
        await self._unsubscribe()

    async def _subscribe(self, prefetch: int) -> None:
        assert self._channel is not None
        await self._channel.set_qos(prefetch_count=prefetch)  # the robust channel restores it too
        underlay = await self._channel.get_underlay_channel()
        if underlay is not self._underlay:
            underlay.on_consumer_cancel_callbacks.add(self._cancelled)
        ok = await underlay.basic_consume(self._topology.rows_queue, self._on_delivered, no_ack=False)
        self._underlay, self._tag = underlay, ok.consumer_tag
        log.info("import.consuming", queue=self._topology.rows_queue, prefetch=prefetch)

    async def _unsubscribe(self) -> None:
        if self._underlay is not None and self._tag is not None:
            try:
                await self._underlay.basic_cancel(self._tag)
            except Exception as exc:
                log.warning("import.cancel_failed", error=type(exc).__name__)
            self._tag = None

    def _reopened(self, *_: Any) -> None:
        """The robust channel was reopened (a reconnect): the old subscription went with its channel."""
        self._tag = None
        self._resubscribe()

    def _cancelled(self, frame: Any, *_: Any) -> None:
        """The broker cancelled a subscription (``basic.cancel``): subscribe again if it was ours."""
        if getattr(frame, "consumer_tag", None) == self._tag:
            log.warning("import.consumer_cancelled", queue=self._topology.rows_queue)
            self._tag = None
            self._resubscribe()

    def _resubscribe(self, prefetch: int | None = None) -> None:
        if self._consuming and self._resizing is None:
            self._resizing = asyncio.create_task(self._resize(prefetch or self._sizer.current))

    def _observe(self, rows: int) -> None:
        """Re-subscribes with a prefetch fitted to the rows messages carry (see ``prefetch``)."""
        wanted = self._sizer.observe(rows)
        if wanted is not None:
            self._resubscribe(wanted)

    async def _resize(self, prefetch: int) -> None:
        """Deliveries made before the cancel still reach the callback (they precede CancelOk)."""
        try:
            await self._unsubscribe()
            while self._consuming and self._tag is None:
                try:
                    await self._subscribe(prefetch)
                except Exception as exc:  # the channel is being restored: try again shortly
                    log.warning("import.resubscribe_failed", error=type(exc).__name__)
                    await asyncio.sleep(RESUBSCRIBE_PAUSE_SECONDS)
        finally:
            self._resizing = None

    async def close(self) -> None:
        """Closes the channel: every message not acknowledged by now goes back to the queue."""
        await self.stop_consuming()
        if self._window is not None:
            await self._window.wait_sent()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = None

    async def _on_delivered(self, message: DeliveredMessage) -> None:
        tag = cast(spec.Basic.Deliver, message.delivery).delivery_tag or 0  # a consumer gets Deliver frames
        delivery = _Delivery(message, tag, self._window_of(message.channel, tag))
        if tracing.enabled():  # a CONSUMER span, child of the context the message's headers carry
            queue, key, message_id = self._topology.rows_queue, delivery.routing_key, delivery.message_id
            with tracing.consumer_span(delivery.headers, queue, key, message_id) as span:
                delivery.trace_context = span
                rows = await self._ingest.receive(delivery)
        else:
            rows = await self._ingest.receive(delivery)
        if rows:
            self._observe(rows)

    def _window_of(self, channel: AckChannel, tag: int) -> AckWindow:
        """The acknowledgement window of the channel the message came on (new after a reconnect)."""
        if self._window is None or self._window.channel is not channel:
            self._window = AckWindow(channel)
        self._window.delivered(tag)
        return self._window
