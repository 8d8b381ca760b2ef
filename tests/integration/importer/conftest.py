"""The import service against real PostgreSQL and RabbitMQ, with identity faked by a real grpc.aio
server on a real port. Queues and exchanges use the session's own prefix and are deleted at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import grpc
import pytest

from import_service.bootstrap import ImportApp, build_import
from import_service.service.retrying import Backoff
from shared.amqp.publisher import amqp_user
from shared.amqp.topology import Topology, declare, delete
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as ipb_grpc
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc
from shared.settings import Settings
from tests.integration.importer.importer_support import (
    IMPORTER_TOKEN,
    TOKEN_SPEC,
    AppFactory,
    Connector,
    FakeIdentity,
)

TEST_BACKOFF = Backoff(initial_seconds=0.05, cap_seconds=0.5)


@pytest.fixture(scope="session")
async def fake_identity_server() -> AsyncIterator[tuple[FakeIdentity, int]]:
    fake = FakeIdentity()
    server = grpc.aio.server()
    ipb_grpc.add_IdentityServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, port
    await server.stop(0)


@pytest.fixture
def fake_identity(fake_identity_server: tuple[FakeIdentity, int]) -> FakeIdentity:
    fake, _ = fake_identity_server
    fake.down_until, fake.delay, fake.crash_next = 0.0, 0.0, 0
    return fake


@pytest.fixture(scope="session")
async def import_topology(amqp_url: str, amqp_prefix: str) -> AsyncIterator[Topology]:
    """Declared once for the session; every queue and exchange deleted at the end, full or not."""
    topology = Topology(amqp_prefix)
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await declare(channel, topology)
    yield topology
    channel = await connection.channel()
    await delete(channel, topology)
    await connection.close()


@pytest.fixture(scope="session")
def import_settings(
    import_db_url: str,
    amqp_url: str,
    import_topology: Topology,
    fake_identity_server: tuple[FakeIdentity, int],
) -> Settings:
    return Settings(
        import_database_url=import_db_url,
        amqp_url=amqp_url,
        amqp_prefix=import_topology.prefix,
        identity_addr=f"127.0.0.1:{fake_identity_server[1]}",
        import_token=IMPORTER_TOKEN,
        tokens=TOKEN_SPEC,
        connectors=f"{amqp_user(amqp_url)}:*",
        import_metrics_port=0,
        import_batch_wait_ms=20,
        identity_call_timeout_seconds=5,
        shutdown_grace_seconds=5,
    )


@pytest.fixture
def make_app(import_settings: Settings) -> AppFactory:
    """``async with make_app(**overrides) as app``: built, serving on a free port, consuming."""

    @asynccontextmanager
    async def factory(
        *, consume: bool = True, grace: float = 5, **overrides: Any
    ) -> AsyncIterator[ImportApp]:
        settings = import_settings.model_copy(update=overrides)
        app = await build_import(settings, backoff=TEST_BACKOFF)
        try:
            await app.start(port=0, host="127.0.0.1")
            if consume:
                await app.start_consumer()
            yield app
        finally:
            await app.close(grace=grace)

    return factory


@pytest.fixture
async def import_app(make_app: AppFactory, fake_identity: FakeIdentity) -> AsyncIterator[ImportApp]:
    async with make_app() as app:
        yield app


@pytest.fixture
async def importer(import_app: ImportApp) -> AsyncIterator[pb_grpc.ImportServiceStub]:
    """A client of the running app's ImportService."""
    assert import_app.running is not None
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{import_app.running.port}")
    yield pb_grpc.ImportServiceStub(channel)
    await channel.close()


@pytest.fixture(scope="session")
async def broker(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    connection = await aio_pika.connect(amqp_url)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
async def connector(
    broker: aio_pika.abc.AbstractConnection, import_topology: Topology, amqp_url: str
) -> Connector:
    channel = await broker.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(import_topology.exchange)
    return Connector(channel, exchange, user_id=amqp_user(amqp_url))
