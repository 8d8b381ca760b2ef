"""Exchanges and queues of the import service (api.md, "Queue contract"), declared idempotently.

With prefix ``P`` (``ROLLCALL_AMQP_PREFIX``, default ``rollcall``):

- ``P.import``: durable topic exchange connectors publish to, routing key ``rows.<school_id>``;
- ``P.import.rows``: quorum queue bound with ``rows.*``; a delivery limit sends a message that keeps
  failing to the dead-letter exchange; an explicit length cap refuses publishes (the publisher gets
  a nack) rather than dropping rows;
- ``P.import.dead``: fanout exchange and quorum queue for dead letters (messages the consumer
  refused, with ``x-rollcall-dead-reason``, and messages over the delivery limit). Capped too, the
  oldest dead letter dropped first (each is also recorded in the import database);
- ``P.events``: durable topic exchange the relays publish change events to (api.md "Events"),
  routing key = event type; consumers bind their own queues.

Only features RabbitMQ 3.10 and 4.x share are used; the same arguments are in the broker
definitions under ``deploy/`` (a mismatch makes the declaration fail with PRECONDITION_FAILED).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

DELIVERY_LIMIT = 20
ROWS_QUEUE_MAX_LENGTH = 5_000_000
DEAD_QUEUE_MAX_LENGTH = 1_000_000
ROWS_BINDING = "rows.*"


@dataclass(frozen=True)
class Topology:
    """The names under one prefix."""

    prefix: str

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.import"

    @property
    def rows_queue(self) -> str:
        return f"{self.prefix}.import.rows"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.import.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.import.dead"

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    def rows_queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": self.dead_exchange,
            "x-max-length": ROWS_QUEUE_MAX_LENGTH,
            "x-overflow": "reject-publish",
        }

    def dead_queue_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum", "x-max-length": DEAD_QUEUE_MAX_LENGTH, "x-overflow": "drop-head"}


def routing_key(school_id: str) -> str:
    return f"rows.{school_id}"


def school_of(routing: str) -> str:
    """The school a routing key names ("" when it is not ``rows.<school_id>``)."""
    return routing[5:] if routing.startswith("rows.") else ""


@dataclass(frozen=True)
class Declared:
    exchange: AbstractExchange
    rows_queue: AbstractQueue
    dead_exchange: AbstractExchange
    dead_queue: AbstractQueue


async def declare(channel: AbstractChannel, topology: Topology) -> Declared:
    """Declares everything (safe to repeat; robust channels re-declare after a reconnect)."""
    dead_exchange = await channel.declare_exchange(
        topology.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await channel.declare_queue(
        topology.dead_queue, durable=True, arguments=topology.dead_queue_arguments()
    )
    await dead_queue.bind(dead_exchange, routing_key="")
    exchange = await channel.declare_exchange(topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    rows_queue = await channel.declare_queue(
        topology.rows_queue, durable=True, arguments=topology.rows_queue_arguments()
    )
    await rows_queue.bind(exchange, routing_key=ROWS_BINDING)
    return Declared(exchange, rows_queue, dead_exchange, dead_queue)


async def declare_events(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    """Declares the events exchange (safe to repeat)."""
    return await channel.declare_exchange(topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)


async def delete(channel: AbstractChannel, topology: Topology) -> None:
    """Removes the queues and exchanges (tests and tenant teardown), whatever they still hold."""
    for queue in (topology.rows_queue, topology.dead_queue):
        await channel.queue_delete(queue, if_unused=False, if_empty=False)
    for exchange in (topology.exchange, topology.dead_exchange, topology.events_exchange):
        await channel.exchange_delete(exchange)
