"""The one place the import service is wired together from settings.

``build_import(settings)`` connects to PostgreSQL, RabbitMQ (declaring the topology) and identity;
``start()`` serves gRPC, ``start_consumer()`` consumes the rows queue, ``close(grace)`` stops both
gracefully (SIGTERM): no new deliveries, running batches finish and are acknowledged within the
grace period, everything unacknowledged returns to the queue when the channel closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from aio_pika.abc import AbstractRobustConnection

from import_service.adapters.amqp.codec import decode
from import_service.adapters.amqp.consumer import AmqpConsumer
from import_service.adapters.amqp.dead_letters import AmqpDeadLetters
from import_service.adapters.event_encoding import SOURCE as EVENT_SOURCE
from import_service.adapters.event_encoding import encode_event
from import_service.adapters.grpc.access_rules import RULES, SERVICE
from import_service.adapters.grpc.servicer import ImportServicer
from import_service.adapters.identity.client import IdentityClient
from import_service.adapters.postgres.store import TRANSIENT_ERRORS, PostgresStore
from import_service.domain.connectors import ConnectorPolicy, parse_connectors
from import_service.service.access import SchoolAccess
from import_service.service.applying import RowsApplying
from import_service.service.decisions import JobDecisions
from import_service.service.ingest import Ingest
from import_service.service.job_guard import JobGuard
from import_service.service.job_runner import JobRunner
from import_service.service.jobs import JobQueries
from import_service.service.redrive import Redrives
from import_service.service.retrying import Backoff
from import_service.service.uploads import Uploads
from shared import tracing
from shared.amqp.connect import connect_robust_any
from shared.amqp.publisher import AmqpPublisher, amqp_user
from shared.amqp.topology import Topology, declare
from shared.events.pg_outbox import RelayOutbox
from shared.events.runner import RelaySpec
from shared.files import row_reader_for
from shared.files.failed_rows_writer import FailedRowsCsv
from shared.grpc_kit.metrics import DB_POOL_IN_USE
from shared.grpc_kit.server import RunningServer, client_credentials, start_server, watch_readiness
from shared.logging import get_logger
from shared.pg import create_pool
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc
from shared.settings import Settings

log = get_logger("import.app")
BROKER_RECONNECT_SECONDS = 2


@dataclass
class ImportApp:
    settings: Settings
    store: PostgresStore
    connection: AbstractRobustConnection
    identity: IdentityClient
    publisher: AmqpPublisher
    ingest: Ingest
    runner: JobRunner
    consumer: AmqpConsumer
    servicer: ImportServicer
    topology: Topology
    running: RunningServer | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _closed: bool = False

    async def start(self, port: int | None = None, host: str = "[::]") -> RunningServer:
        """Serves ImportService (+ health, reflection); health follows the database and broker."""
        self.running = await start_server(
            settings=self.settings,
            port=self.settings.import_port if port is None else port,
            add_servicers=lambda server: pb_grpc.add_ImportServiceServicer_to_server(self.servicer, server),
            service_names=[SERVICE],
            rules=RULES,
            host=host,
        )
        probes = [self._database_answers, self._broker_open]
        self._background.append(asyncio.create_task(watch_readiness(self.running, probes)))
        return self.running

    async def start_consumer(self) -> None:
        """Consumes the rows queue and runs the job runner (held, guarded, full-roster, undo jobs)."""
        await self.consumer.start()
        self.runner.start()

    async def close(self, grace: float | None = None) -> None:
        """Graceful stop within ``grace`` seconds (default: settings.shutdown_grace_seconds)."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + (self.settings.shutdown_grace_seconds if grace is None else grace)
        await self.consumer.stop_consuming()
        await self.runner.stop()
        await asyncio.gather(self._drain(deadline), self._stop_server(deadline))
        for task in self._background:
            task.cancel()
        for closing in (self.publisher.close, self.connection.close, self.identity.close, self.store.close):
            with contextlib.suppress(Exception):
                await closing()
        log.info("import.stopped")

    async def _drain(self, deadline: float) -> None:
        finished = await self.ingest.drain(max(0.0, deadline - time.monotonic()))
        await self.consumer.close()
        log.info("import.drained", all_batches_finished=finished, acked=self.ingest.settler.stats.acked)

    async def _stop_server(self, deadline: float) -> None:
        if self.running is not None:
            await self.running.stop(max(0.0, deadline - time.monotonic()))

    async def _database_answers(self) -> bool:
        pool = self.store.pool
        DB_POOL_IN_USE.labels("import").set(pool.get_size() - pool.get_idle_size())
        return await self.store.ping()

    async def _broker_open(self) -> bool:
        return not self.connection.is_closed and self.connection.connected.is_set()


async def build_import(settings: Settings, *, backoff: Backoff | None = None) -> ImportApp:
    """Connects everything (declaring the queue topology); nothing is served or consumed yet.
    Traces when ``ROLLCALL_OTLP_ENDPOINT`` is set (``shared.tracing``)."""
    tracing.configure(settings.otlp_endpoint, tracing.SERVICE_IMPORT)
    pool = await create_pool(
        settings.import_database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    try:
        connection = await connect_robust_any(settings.amqp_urls, reconnect_interval=BROKER_RECONNECT_SECONDS)
    except BaseException:
        await pool.close()
        raise
    try:
        return await _wire(settings, PostgresStore(pool), connection, backoff)
    except BaseException:
        await connection.close()
        await pool.close()
        raise


async def _wire(
    settings: Settings, store: PostgresStore, connection: AbstractRobustConnection, backoff: Backoff | None
) -> ImportApp:
    topology = Topology(settings.amqp_prefix)
    setup = await connection.channel()
    await declare(setup, topology)
    await setup.close()
    connectors = connector_policy(settings)
    publisher = await AmqpPublisher.open(connection, topology, connectors.own_user)
    identity = IdentityClient(
        settings.identity_addr,
        settings.import_token,
        settings.identity_call_timeout_seconds,
        client_credentials(settings, settings.identity_tls_ca),
        long_timeout_seconds=settings.identity_long_call_timeout_seconds,
    )
    backoff = backoff or Backoff()
    applying = RowsApplying(identity, backoff, settings.import_batches_in_flight)
    runner = JobRunner(
        store,
        identity,
        applying,
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        batch_rows=settings.import_batch_rows,
        transient_db=TRANSIENT_ERRORS,
        backoff=backoff,
    )
    ingest = Ingest(
        store,
        identity,
        AmqpDeadLetters(publisher),
        decode,
        connectors,
        batch_rows=settings.import_batch_rows,
        wait_ms=settings.import_batch_wait_ms,
        max_in_flight=settings.import_batches_in_flight,
        transient_db=TRANSIENT_ERRORS,
        backoff=backoff,
        applying=applying,
        rows_done=runner.nudge,
    )
    consumer = AmqpConsumer(connection, topology, ingest, settings.import_prefetch)
    access = SchoolAccess(identity)
    queries = JobQueries(store, access, FailedRowsCsv())
    guard = JobGuard(identity, backoff)
    uploads = Uploads(store, publisher, access, row_reader_for, guard)
    decisions = JobDecisions(store, queries, runner.nudge)
    servicer = ImportServicer(queries, uploads, Redrives(store, publisher, queries, guard), decisions)
    return ImportApp(
        settings, store, connection, identity, publisher, ingest, runner, consumer, servicer, topology
    )


RELAY_LOCK_KEY = 7_102
"""The advisory lock the import relay's leader holds."""


def relay_spec(settings: Settings) -> RelaySpec:
    """The import service's events relay (import_job.*): its outbox, CloudEvents source and ports."""
    return RelaySpec(
        name="import",
        source=EVENT_SOURCE,
        dsn=settings.import_database_url,
        lock_key=RELAY_LOCK_KEY,
        outbox=RelayOutbox,
        encode=encode_event,
        metrics_port=settings.import_relay_metrics_port,
        health_port=settings.import_relay_health_port,
    )


def connector_policy(settings: Settings) -> ConnectorPolicy:
    """Who may publish rows for which school: ``ROLLCALL_CONNECTORS``, plus the service's own AMQP
    user. Unset, only the service's own publishing is accepted (secure default, with a warning)."""
    own = amqp_user(settings.amqp_url)
    grants = parse_connectors(settings.connectors)
    if not grants:
        log.warning(
            "import.no_connectors",
            detail="ROLLCALL_CONNECTORS is unset: only this service's own AMQP user may publish rows",
            own_user=own,
        )
    else:
        log.info("import.connectors", users=sorted(grants), own_user=own)
    return ConnectorPolicy(own, grants)
