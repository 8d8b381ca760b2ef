"""Publishing events to ``P.events`` (api.md "Events"): persistent, confirmed, CloudEvents headers.

The body is the ``rollcall.events.v1.Event`` as protobuf or as its proto3 JSON
(``ROLLCALL_EVENTS_CONTENT_TYPE``). Events of one subject are published one after the other, each
after the broker confirmed the one before, so they reach every bound queue in sequence order;
different subjects go concurrently (up to ``in_flight``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractExchange
from google.protobuf import json_format

from shared.proto.rollcall.events.v1 import events_pb2 as pb

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SPEC_VERSION = "1.0"


def cloud_event_headers(event: pb.Event, source: str) -> dict[str, str]:
    """The CloudEvents 1.0 attributes of ``event`` as AMQP headers (the binding's ``cloudEvents:``)."""
    return {
        "cloudEvents:specversion": SPEC_VERSION,
        "cloudEvents:id": event.id,
        "cloudEvents:source": source,
        "cloudEvents:type": f"rollcall.{event.type}",
        "cloudEvents:subject": event.subject,
        "cloudEvents:time": event.time.ToJsonString(),
        "cloudEvents:sequence": str(event.sequence),
    }


def encode(event: pb.Event, content_type: str) -> bytes:
    if content_type == PROTOBUF:
        return event.SerializeToString()
    return json_format.MessageToJson(event, indent=None).encode()


def decode(body: bytes, content_type: str) -> pb.Event:
    """An event from a message body (consumers and tests)."""
    event = pb.Event()
    if content_type.split(";", 1)[0].strip().lower() == PROTOBUF:
        event.ParseFromString(body)
    else:
        json_format.Parse(body, event, ignore_unknown_fields=True)
    return event


class EventPublisher:
    def __init__(
        self, exchange: AbstractExchange, source: str, content_type: str, in_flight: int = 256
    ) -> None:
        self._exchange = exchange
        self._source = source
        self._content_type = content_type
        self._slots = asyncio.Semaphore(in_flight)

    async def publish(self, events: Sequence[pb.Event]) -> None:
        """Publishes every event, confirmed; raises when any could not be (then publish them all again:
        consumers deduplicate by id)."""
        chains: dict[str, list[pb.Event]] = {}
        for event in events:
            chains.setdefault(event.subject, []).append(event)
        await asyncio.gather(*(self._chain(chain) for chain in chains.values()))

    async def _chain(self, chain: list[pb.Event]) -> None:
        for event in chain:
            async with self._slots:
                await self._exchange.publish(self._message(event), routing_key=event.type)

    def _message(self, event: pb.Event) -> aio_pika.Message:
        return aio_pika.Message(
            encode(event, self._content_type),
            content_type=self._content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.id,
            timestamp=event.time.ToDatetime(),
            type=event.type,
            headers=cloud_event_headers(event, self._source),  # type: ignore[arg-type]
        )
