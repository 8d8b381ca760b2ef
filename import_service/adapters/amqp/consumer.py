"""Consuming ``P.import.rows``: each delivery translated for ``Ingest.receive``, settled as it says.

The consumer holds the subscription (channel, queue, consumer tag, a prefetch sized by rows) and
nothing else: a delivery becomes the service's ``Delivery`` (envelope, routing key's school, and
``ack``/``requeue`` through the channel's acknowledgement window), and ``Ingest.receive`` decides
accept, dead-letter or wait. Messages are settled explicitly, never by aio-pika's ``process()``:
the service acknowledges a message only after the outcomes of all its rows are committed.
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from import_service.adapters.amqp.acks import AckWindow
from import_service.adapters.amqp.prefetch import PrefetchSizer
from import_service.service.ingest import Ingest
from shared import tracing
from shared.amqp.topology import Topology, declare, school_of
from shared.logging import get_logger

log = get_logger("import.consumer")


class _Delivery:
    """``ports.Delivery`` over an aio-pika message, acknowledged through its channel's window."""

    __slots__ = (
        "_message",
        "_window",
        "body",
        "content_type",
        "message_id",
        "routing_key",
        "school_id",
        "trace_context",
        "user_id",
    )

    def __init__(self, message: AbstractIncomingMessage, window: AckWindow) -> None:
        self._message = message
        self._window = window
        self.body = message.body
        self.content_type = message.content_type or ""
        self.routing_key = message.routing_key or ""
        self.school_id = school_of(self.routing_key)
        self.message_id = message.message_id or ""
        self.user_id = message.user_id
        self.trace_context: object = None  # the delivery's span (tracing on): batches link to it

    async def ack(self) -> None:
        self._window.ack(self._message)

    async def requeue(self) -> None:
        await self._window.requeue(self._message)


class AmqpConsumer:
    """Holds strong references to its channel, queue and consumer tag for its whole life."""

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
        delivery = _Delivery(message, self._window_of(message))
        if tracing.enabled():  # a CONSUMER span, child of the context the message's headers carry
            queue, key, message_id = self._topology.rows_queue, delivery.routing_key, delivery.message_id
            with tracing.consumer_span(message.headers, queue, key, message_id) as span:
                delivery.trace_context = span
                rows = await self._ingest.receive(delivery)
        else:
            rows = await self._ingest.receive(delivery)
        if rows:
            self._observe(rows)

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
