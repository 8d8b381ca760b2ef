"""Running a relay as its own process (``identity-service relay``, ``import-service relay``):
/metrics on its port, gRPC health on its own (NOT_SERVING while its database or the broker does not
answer), graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from shared import pg
from shared.amqp.connect import connect_robust_any
from shared.amqp.topology import Topology, declare_events
from shared.events.outbox import Outbox, OutboxRow
from shared.events.publisher import EventPublisher
from shared.events.relay import Relay, RelayConfig, advisory_leadership
from shared.grpc_kit.metrics import serve_metrics
from shared.grpc_kit.server import RunningServer, install_signal_handlers, start_server, watch_readiness
from shared.logging import get_logger
from shared.proto.rollcall.events.v1 import events_pb2 as pb
from shared.settings import Settings

log = get_logger("events.runner")
BROKER_RECONNECT_SECONDS = 2


@dataclass
class RelaySpec:
    """What differs between the two services' relays."""

    name: str  # "identity" or "import" (metrics label, logs)
    source: str  # CloudEvents source
    dsn: str
    lock_key: int
    outbox: Callable[[asyncpg.Connection], Outbox]
    encode: Callable[[OutboxRow], pb.Event]
    metrics_port: int
    health_port: int


@dataclass
class RunningRelay:
    relay: Relay
    connection: AbstractRobustConnection
    pool: asyncpg.Pool
    task: asyncio.Task[None]
    stop: asyncio.Event
    health: RunningServer | None = None
    watch: asyncio.Task[None] | None = None

    async def close(self) -> None:
        self.stop.set()
        await self.task
        if self.watch is not None:
            self.watch.cancel()
        if self.health is not None:
            await self.health.stop(1.0)
        await self.connection.close()
        await self.pool.close()


async def start_relay(settings: Settings, spec: RelaySpec, *, health: bool = True) -> RunningRelay:
    """Connects, declares the events exchange and starts relaying (and serving health)."""
    pool = await pg.create_pool(spec.dsn, min_size=1, max_size=1)
    connection = await connect_robust_any(settings.amqp_urls, reconnect_interval=BROKER_RECONNECT_SECONDS)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await declare_events(channel, Topology(settings.amqp_prefix))
    publisher = EventPublisher(exchange, spec.source, settings.events_content_type)
    config = RelayConfig(retention=timedelta(hours=settings.events_retention_hours))
    relay = Relay(
        advisory_leadership(spec.dsn, spec.lock_key, spec.outbox), publisher, spec.encode, spec.name, config
    )
    stop = asyncio.Event()
    running = RunningRelay(relay, connection, pool, asyncio.create_task(relay.run(stop)), stop)
    if health:
        running.health = await start_server(
            settings=settings, port=spec.health_port, add_servicers=lambda _: None, service_names=(), rules={}
        )

        async def database() -> bool:
            return await pg.ping(pool)

        async def broker() -> bool:
            return not connection.is_closed and connection.connected.is_set()

        running.watch = asyncio.create_task(watch_readiness(running.health, [database, broker]))
    log.info("relay.started", source=spec.name, exchange=Topology(settings.amqp_prefix).events_exchange)
    return running


async def serve_relay(settings: Settings, spec: RelaySpec) -> None:
    """The relay process: until SIGTERM/SIGINT."""
    serve_metrics(spec.metrics_port)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    running = await start_relay(settings, spec)
    try:
        await stop.wait()
    finally:
        await running.close()
        log.info("relay.stopped", source=spec.name, published=running.relay.published)
