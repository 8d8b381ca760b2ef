"""Publishing to the import exchange: persistent, confirmed by the broker, unique message ids.

Used by SubmitFile and RetryFailedRows (rows go through the queue like any connector's), by the
``rollcall`` CLI (a connector) and by the consumer for dead letters. Rows and ends carry the
``user_id`` property: the AMQP user of the connection (RabbitMQ refuses any other), which is how the
import service knows who published them (``domain.connectors``). Dead-letter copies carry none (the
original's is in header ``x-rollcall-user-id``), so replaying one never passes it off as the
service's own. A publish returns once the broker confirmed it; a refusal (queue full:
reject-publish), an unroutable message or a lost connection raises UNAVAILABLE. With tracing on,
each publish is a PRODUCER span and the message carries its W3C ``traceparent`` (``shared.tracing``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import cast
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiormq import spec

from import_service.domain.jobs import JobSpec
from import_service.domain.rows import MAX_ROWS_PER_MESSAGE, FileRow
from shared import tracing
from shared.amqp.messages import PROTOBUF, encode_end, encode_rows
from shared.amqp.topology import Topology, routing_key
from shared.errors import Reason, RollcallError

PUBLISH_TIMEOUT_SECONDS = 30.0
DEFAULT_AMQP_USER = "guest"


def amqp_user(url: str) -> str:
    """The user an AMQP URL connects as (aio-pika's default, ``guest``, when it names none); of
    several comma-separated URLs (a cluster's nodes, all with the same user), the first's."""
    first = url.split(",", 1)[0].strip()
    return unquote(urlsplit(first).username or "") or DEFAULT_AMQP_USER


class AmqpPublisher:
    """Publishes on its own confirming channel (``on_return_raises``: unroutable is an error)."""

    def __init__(
        self, channel: AbstractChannel, exchange: AbstractExchange, dead: AbstractExchange, user_id: str
    ) -> None:
        self._channel = channel
        self._exchange = exchange
        self._dead = dead
        self._user_id = user_id
        self._ids = _MessageIds()

    @classmethod
    async def open(
        cls, connection: aio_pika.abc.AbstractRobustConnection, topology: Topology, user_id: str
    ) -> AmqpPublisher:
        """``user_id`` must be the connection's AMQP user (``amqp_user`` of its URL)."""
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(topology.exchange, ensure=True)
        dead = await channel.get_exchange(topology.dead_exchange, ensure=True)
        return cls(channel, exchange, dead, user_id)

    async def publish_rows(self, spec: JobSpec, rows: Sequence[FileRow]) -> None:
        for start in range(0, len(rows), MAX_ROWS_PER_MESSAGE):
            body = encode_rows(spec, tuple(rows[start : start + MAX_ROWS_PER_MESSAGE]))
            await self._publish(
                self._exchange, body, routing_key(spec.school_id), PROTOBUF, user_id=self._user_id
            )

    async def publish_end(self, spec: JobSpec, total_rows: int) -> None:
        await self._publish(
            self._exchange,
            encode_end(spec, total_rows),
            routing_key(spec.school_id),
            PROTOBUF,
            user_id=self._user_id,
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
        *,
        user_id: str | None = None,
    ) -> None:
        message_id = message_id or self._ids()
        if tracing.enabled():  # a PRODUCER span whose traceparent the message carries
            with tracing.producer_span(exchange.name, routing, message_id):
                headers = tracing.inject(headers)
                await self._send(exchange, body, routing, content_type, message_id, headers, user_id)
        else:
            await self._send(exchange, body, routing, content_type, message_id, headers, user_id)

    async def _send(
        self,
        exchange: AbstractExchange,
        body: bytes,
        routing: str,
        content_type: str,
        message_id: str,
        headers: Mapping[str, str] | None,
        user_id: str | None,
    ) -> None:
        properties = spec.Basic.Properties(
            content_type=content_type or None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT.value,
            message_id=message_id,
            headers=dict(headers) if headers else None,
            user_id=user_id,
        )
        try:
            if self._channel.is_closed:
                raise ChannelInvalidStateError(f"{self._channel!r} is closed")
            channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
            # Straight to aiormq (aio-pika's Message and Exchange.publish were a third of the CPU of a
            # one-row publish); mandatory, on a channel that raises on returns, as Exchange.publish
            # does. wait=False: what we wait for is the broker's confirm, not the socket write.
            await channel.basic_publish(
                body,
                exchange=exchange.name,
                routing_key=routing,
                properties=properties,
                mandatory=True,
                timeout=PUBLISH_TIMEOUT_SECONDS,
                wait=False,
            )
        except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as exc:
            detail = f"the queue did not accept the message ({type(exc).__name__}); try again"
            raise RollcallError(Reason.UNAVAILABLE, detail) from exc


class _MessageIds:
    """Unique message ids without a random draw (a syscall) per message: a random prefix per
    publisher and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(12).hex()
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"
