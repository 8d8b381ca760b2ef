"""Fixtures of the notification tests: an identity service on its own database (so its outbox and
its digest claims are this folder's alone), a real SMTP server (aiosmtpd) in-process, the courier,
the digest timer on a clock the test moves, and the courier's consumer of job events on a broker
prefix of each test's own (the test publishes to its events exchange as the import relay would)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from identity_service.adapters.amqp.job_events import JobEventsConsumer
from identity_service.bootstrap import (
    IdentityApp,
    build_courier,
    build_job_events_consumer,
    build_pending_digest,
)
from identity_service.service.courier import Courier
from identity_service.service.pending_digest import DigestConfig, PendingDigest
from shared.amqp.topology import Topology
from shared.settings import Settings
from tests.infra import IDENTITY_MIGRATIONS, migrated_database
from tests.integration.identity.identity_support import (
    IdentityClient,
    identity_client,
    running_identity,
    service_settings,
)
from tests.integration.identity_mail.mail_helpers import SmtpServer
from tests.integration.identity_notifications.notify_support import COURIER_CONFIG, Clock, RelayStandIn


@pytest.fixture(scope="session")
async def notify_db_url(pg_server_url: str) -> AsyncIterator[str]:
    name = f"rctest_notify_{uuid.uuid4().hex[:10]}"
    async with migrated_database(pg_server_url, name, IDENTITY_MIGRATIONS) as url:
        yield url


@pytest.fixture(scope="session")
def mail_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def notify_settings(notify_db_url: str, mail_server: SmtpServer, amqp_url: str) -> Settings:
    return service_settings(
        notify_db_url,
        db_pool_max=20,
        smtp_host="127.0.0.1",
        smtp_port=mail_server.port,
        mail_from="careers@rollcall.example",
        amqp_url=amqp_url,
    )


@pytest.fixture(scope="session")
async def notify_app(notify_settings: Settings) -> AsyncIterator[IdentityApp]:
    async with running_identity(notify_settings) as app:
        yield app


@pytest.fixture(scope="session")
async def identity(notify_app: IdentityApp, notify_db_url: str) -> AsyncIterator[IdentityClient]:
    async with identity_client(notify_app, notify_db_url) as client:
        yield client


@pytest.fixture
def courier(notify_app: IdentityApp, notify_settings: Settings) -> Courier:
    return build_courier(notify_app.pool, notify_settings, COURIER_CONFIG)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def digest(notify_app: IdentityApp, clock: Clock) -> PendingDigest:
    return build_pending_digest(notify_app.pool, DigestConfig(check_every=0.05), clock)


@pytest.fixture
def events_prefix(amqp_prefix: str) -> str:
    return f"{amqp_prefix}-nt{uuid.uuid4().hex[:6]}"


@pytest.fixture
def consumer(notify_app: IdentityApp, notify_settings: Settings, events_prefix: str) -> JobEventsConsumer:
    """The courier's consumer (prefetch 1: messages are handled in the order published)."""
    settings = notify_settings.model_copy(update={"amqp_prefix": events_prefix})
    return build_job_events_consumer(notify_app.pool, settings, prefetch=1)


@pytest.fixture
def consumer_factory(
    notify_app: IdentityApp, notify_settings: Settings, events_prefix: str
) -> Callable[[], JobEventsConsumer]:
    """New consumers of the same queue (a courier process restarted)."""
    settings = notify_settings.model_copy(update={"amqp_prefix": events_prefix})
    return lambda: build_job_events_consumer(notify_app.pool, settings, prefetch=1)


@pytest.fixture
async def relay(amqp_url: str, events_prefix: str) -> AsyncIterator[RelayStandIn]:
    async with RelayStandIn(amqp_url, Topology(events_prefix)) as stand_in:
        yield stand_in
