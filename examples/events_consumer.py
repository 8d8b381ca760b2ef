"""An example consumer of rollcall's change events (docs/events.md), in Python with aio-pika.

    python examples/events_consumer.py            # from the repository root, in its virtualenv

Settings (environment): ``AMQP_URL`` (amqp://guest:guest@localhost:5672/), ``ROLLCALL_EXCHANGE``
(rollcall.events), ``QUEUE`` (example.rollcall-events: name it after your platform), ``BINDINGS``
(comma-separated routing keys or patterns, ``#`` = every event; e.g. ``user.*,school.*``).

What every consumer does, shown here: a durable quorum queue of its own bound to the event types it
wants; a message acknowledged only once handled (delivery is at least once); an event skipped when
its id was already handled or its sequence is not above the last one handled for its subject.
Sequences may skip numbers when you bind only some types (a subject's sequence counts all its
events). The id and sequence come from the CloudEvents headers, so they are read the same way for
JSON and protobuf bodies. The state is kept in memory here; a real consumer stores the last sequence
per subject with its own data, in the same transaction as the effect of the event.

Bodies: ``application/json`` is the proto3 JSON form of ``rollcall.events.v1.Event`` (plain
``json``); ``application/x-protobuf`` is decoded with the generated ``events_pb2`` (here from
``shared/proto``; elsewhere generate it from ``protos/`` with buf or protoc).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
EXCHANGE = os.environ.get("ROLLCALL_EXCHANGE", "rollcall.events")
QUEUE = os.environ.get("QUEUE", "example.rollcall-events")
BINDINGS = [key.strip() for key in os.environ.get("BINDINGS", "#").split(",") if key.strip()]
REMEMBERED_IDS = 100_000


@dataclass(frozen=True)
class Envelope:
    """What the CloudEvents headers say about an event."""

    id: str
    type: str
    subject: str
    sequence: int
    time: str


class Deduplicator:
    """The ids handled lately (bounded) and the last sequence handled per subject."""

    def __init__(self, remembered: int = REMEMBERED_IDS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered
        self.last_sequence: dict[str, int] = {}

    def is_new(self, event: Envelope) -> bool:
        return event.id not in self._ids and event.sequence > self.last_sequence.get(event.subject, 0)

    def handled(self, event: Envelope) -> None:
        self._ids[event.id] = None
        if len(self._ids) > self._remembered:
            self._ids.popitem(last=False)
        self.last_sequence[event.subject] = event.sequence


def envelope(message: AbstractIncomingMessage) -> Envelope:
    headers = message.headers or {}

    def header(name: str) -> str:
        value = headers.get(f"cloudEvents:{name}")
        return value.decode() if isinstance(value, bytes) else str(value)

    return Envelope(
        id=header("id"),
        type=header("type").removeprefix("rollcall."),
        subject=header("subject"),
        sequence=int(header("sequence")),
        time=header("time"),
    )


def body(message: AbstractIncomingMessage) -> dict[str, Any]:
    """The event as a proto3 JSON object, whichever content type it came in."""
    content_type = (message.content_type or "").split(";", 1)[0].strip().lower()
    if content_type == "application/x-protobuf":
        from google.protobuf import json_format

        from shared.proto.rollcall.events.v1 import events_pb2

        event = events_pb2.Event()
        event.ParseFromString(message.body)
        return json_format.MessageToDict(event)
    document = json.loads(message.body)
    assert isinstance(document, dict)
    return document


def handle(event: Envelope, payload: dict[str, Any]) -> None:
    """Your platform's work. Here: one line per event."""
    changed = payload.get("user", {}).get("changedFields")
    what = (
        payload.get("user", {}).get("user")
        or payload.get("userDeleted")
        or payload.get("school", {}).get("school")
        or payload.get("job", {}).get("job")
    )
    detail = f" changed {changed}" if changed else ""
    summary = f" {json.dumps(what)[:200]}" if what else ""
    print(f"{event.type} {event.subject} #{event.sequence}{detail}{summary}", flush=True)


async def consume(stop: asyncio.Event) -> None:
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        # A message at a time: one put back is handled again before the next of its subject.
        await channel.set_qos(prefetch_count=1)
        # The relays declare the exchange too; declaring it here lets the consumer start first.
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        for key in BINDINGS:
            await queue.bind(exchange, routing_key=key)
        seen = Deduplicator()

        async def on_message(message: AbstractIncomingMessage) -> None:
            event = envelope(message)
            if not seen.is_new(event):
                print(f"skipped {event.type} {event.subject} #{event.sequence} (already handled)", flush=True)
                await message.ack()
                return
            try:
                handle(event, body(message))
            except Exception as exc:  # not acknowledged: it comes back (give up after a few tries)
                print(f"failed {event.type} {event.subject} #{event.sequence}: {exc!r}", flush=True)
                await message.nack(requeue=True)
                return
            seen.handled(event)
            await message.ack()

        tag = await queue.consume(on_message)
        print(f"consuming {QUEUE} ({', '.join(BINDINGS)} on {EXCHANGE}); Ctrl-C stops", flush=True)
        await stop.wait()
        await queue.cancel(tag)


def main() -> None:
    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await consume(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
