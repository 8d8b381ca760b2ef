"""The one place where the identity service is wired: settings → pool, unit of work, servicer, server;
and the courier: the same unit of work, the SMTP mailer, the outbox notices, the pending digest's
timer and the consumer of import-job events (notifications)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import grpc

from identity_service.adapters.amqp.job_events import PREFETCH, JobEventsConsumer
from identity_service.adapters.event_encoding import SOURCE as EVENT_SOURCE
from identity_service.adapters.event_encoding import encode_event
from identity_service.adapters.grpc.access_rules import ACCESS_RULES, SERVICE_NAME
from identity_service.adapters.grpc.servicer import IdentityServicer
from identity_service.adapters.postgres.events import RelayOutbox
from identity_service.adapters.postgres.outbox_notices import PostgresMailNotices
from identity_service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from identity_service.adapters.smtp.mailer import SmtpMailer
from identity_service.domain.passwords import PasswordHasher
from identity_service.service.courier import Courier, CourierConfig
from identity_service.service.email_change import CodeSettings
from identity_service.service.hashing import AsyncPasswordHasher
from identity_service.service.notifications import job_event
from identity_service.service.pending_digest import DigestConfig, PendingDigest, utc_now
from shared import pg, tracing
from shared.amqp.topology import Topology
from shared.events.runner import RelaySpec
from shared.grpc_kit.server import RunningServer, start_server, watch_readiness
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.settings import Settings


@dataclass
class IdentityApp:
    """A built identity service: start it (once), then close it."""

    settings: Settings
    pool: asyncpg.Pool
    servicer: IdentityServicer
    hasher: AsyncPasswordHasher | None = None
    running: RunningServer | None = None
    _readiness: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self, port: int | None = None, host: str = "[::]") -> RunningServer:
        """Listen on ``port`` (settings' identity port when None; 0 picks a free one)."""
        if self.running is not None:
            raise RuntimeError("the identity service is already started")
        self.running = await start_server(
            settings=self.settings,
            port=self.settings.identity_port if port is None else port,
            add_servicers=self._add_servicers,
            service_names=(SERVICE_NAME,),
            rules=ACCESS_RULES,
            host=host,
        )
        self._readiness = asyncio.create_task(watch_readiness(self.running, [self._database_answers]))
        return self.running

    async def close(self, grace: float | None = None) -> None:
        """Stop serving (in-flight RPCs get ``grace`` seconds), then close the pool."""
        if self.running is not None:
            wait = self.settings.shutdown_grace_seconds if grace is None else grace
            await self.running.stop(wait)
        if self._readiness is not None:
            self._readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness
        await self.pool.close()
        if self.hasher is not None:
            self.hasher.close()

    def _add_servicers(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_IdentityServiceServicer_to_server(self.servicer, server)

    async def _database_answers(self) -> bool:
        return await pg.ping(self.pool)


async def build_identity(settings: Settings, *, password_hasher: PasswordHasher | None = None) -> IdentityApp:
    """Connect to the identity database and build the servicer (``password_hasher`` lets tests use
    cheaper argon2id parameters). Traces when ``ROLLCALL_OTLP_ENDPOINT`` is set (``shared.tracing``)."""
    tracing.configure(settings.otlp_endpoint, tracing.SERVICE_IDENTITY)
    pool = await pg.create_pool(
        settings.identity_database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    new_uow = functools.partial(PostgresUnitOfWork, pool)
    codes = CodeSettings.from_hours(settings.code_lifetime_hours, settings.code_keys())
    hasher = AsyncPasswordHasher(
        password_hasher,
        hash_slots=settings.password_hash_slots,
        sign_in_slots=settings.sign_in_slots,
        hash_nice=settings.password_hash_nice,
    )
    servicer = IdentityServicer(new_uow, hasher, codes)
    return IdentityApp(settings, pool, servicer, hasher)


RELAY_LOCK_KEY = 7_101
"""The advisory lock the identity relay's leader holds (the migration lock is another)."""


def relay_spec(settings: Settings) -> RelaySpec:
    """Identity's events relay: its outbox, its CloudEvents source, its ports."""
    return RelaySpec(
        name="identity",
        source=EVENT_SOURCE,
        dsn=settings.identity_database_url,
        lock_key=RELAY_LOCK_KEY,
        outbox=RelayOutbox,
        encode=encode_event,
        metrics_port=settings.relay_metrics_port,
        health_port=settings.relay_health_port,
    )


def build_courier(pool: asyncpg.Pool, settings: Settings, config: CourierConfig | None = None) -> Courier:
    """The courier on ``pool`` (the identity database), sending through the settings' SMTP server."""
    tuning = config or CourierConfig()
    return Courier(
        functools.partial(PostgresUnitOfWork, pool),
        SmtpMailer(settings, tuning.send_timeout),
        PostgresMailNotices(settings.identity_database_url),
        settings.code_keys(),
        tuning,
    )


def build_pending_digest(
    pool: asyncpg.Pool, config: DigestConfig | None = None, clock: Callable[[], datetime] = utc_now
) -> PendingDigest:
    """The courier's pending-digest timer on ``pool`` (``clock``: tests drive the hours)."""
    return PendingDigest(functools.partial(PostgresUnitOfWork, pool), config, clock)


def build_job_events_consumer(
    pool: asyncpg.Pool, settings: Settings, prefetch: int = PREFETCH
) -> JobEventsConsumer:
    """The courier's consumer of import-job events (held, completed) on the settings' broker."""
    new_uow = functools.partial(PostgresUnitOfWork, pool)
    handle = functools.partial(job_event, new_uow)
    return JobEventsConsumer(settings.amqp_url, Topology(settings.amqp_prefix), handle, prefetch)
