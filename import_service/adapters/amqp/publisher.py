"""Publishing to the import exchange: persistent, confirmed by the broker, unique message ids.

Used by SubmitFile and RetryFailedRows (rows go through the queue like any connector's) and by
the consumer for dead letters. A publish returns once the broker confirmed it; a refusal (queue
full: reject-publish), an unroutable message or a lost connection raises UNAVAILABLE.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from import_service.adapters.amqp.codec import PROTOBUF, encode_end, encode_rows
from import_service.adapters.amqp.topology import Topology, routing_key
from import_service.domain.jobs import JobSpec
from import_service.domain.rows import MAX_ROWS_PER_MESSAGE, FileRow
from shared.errors import Reason, RollcallError

PUBLISH_TIMEOUT_SECONDS = 30.0


class AmqpPublisher:
    """Publishes on its own confirming channel (``on_return_raises``: unroutable is an error)."""

    def __init__(self, channel: AbstractChannel, exchange: AbstractExchange, dead: AbstractExchange) -> None:
        self._channel = channel
        self._exchange = exchange
        self._dead = dead

    @classmethod
    async def open(
        cls, connection: aio_pika.abc.AbstractRobustConnection, topology: Topology
    ) -> AmqpPublisher:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(topology.exchange, ensure=True)
        dead = await channel.get_exchange(topology.dead_exchange, ensure=True)
        return cls(channel, exchange, dead)

    async def publish_rows(self, spec: JobSpec, rows: Sequence[FileRow]) -> None:
        for start in range(0, len(rows), MAX_ROWS_PER_MESSAGE):
            body = encode_rows(spec, tuple(rows[start : start + MAX_ROWS_PER_MESSAGE]))
            await self._publish(self._exchange, body, routing_key(spec.school_id), PROTOBUF)

    async def publish_end(self, spec: JobSpec, total_rows: int) -> None:
        await self._publish(
            self._exchange, encode_end(spec, total_rows), routing_key(spec.school_id), PROTOBUF
        )

    async def publish_dead(
        self, body: bytes, content_type: str, routing: str, message_id: str, headers: Mapping[str, str]
    ) -> None:
        """A copy of a refused message, with the reason headers, to the dead-letter exchange."""
        await self._publish(self._dead, body, routing, content_type, message_id or None, headers)

    async def close(self) -> None:
        await self._channel.close()

    async def _publish(
        self,
        exchange: AbstractExchange,
        body: bytes,
        routing: str,
        content_type: str,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        message = aio_pika.Message(
            body,
            content_type=content_type or None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id or str(uuid.uuid4()),
            headers=dict(headers or {}),
        )
        try:
            await exchange.publish(message, routing_key=routing, timeout=PUBLISH_TIMEOUT_SECONDS)
        except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as exc:
            detail = f"the queue did not accept the message ({type(exc).__name__}); try again"
            raise RollcallError(Reason.UNAVAILABLE, detail) from exc
