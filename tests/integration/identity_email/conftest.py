"""Fixtures of the email-change tests: an identity service on its own database (so its outbox is
this folder's alone), a real SMTP server (aiosmtpd) in-process, and a courier that sends to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from identity_service.adapters.smtp.courier import Courier
from identity_service.bootstrap import IdentityApp, build_identity
from identity_service.domain.passwords import PasswordHasher
from shared.pg import migrate, with_database
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.settings import Settings
from tests.integration.identity.identity_support import TOKEN_SPEC, Campus, IdentityClient
from tests.integration.identity_email.email_support import CODE_SECRETS, COURIER_CONFIG
from tests.integration.identity_mail.mail_helpers import SmtpServer

MIGRATIONS = Path(__file__).resolve().parents[3] / "identity_service/adapters/postgres/migrations"


@pytest.fixture(scope="session")
async def email_db_url(pg_server_url: str) -> AsyncIterator[str]:
    name = f"rctest_email_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(pg_server_url, name)
    await migrate(url, MIGRATIONS, lock_key=7_001)
    yield url
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def mail_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def email_settings(email_db_url: str, mail_server: SmtpServer) -> Settings:
    return Settings(
        identity_database_url=email_db_url,
        tokens=TOKEN_SPEC,
        identity_metrics_port=0,
        db_pool_max=30,
        shutdown_grace_seconds=1,
        smtp_host="127.0.0.1",
        smtp_port=mail_server.port,
        mail_from="careers@rollcall.example",
        code_secret=list(CODE_SECRETS),
        code_lifetime_hours=24,
    )


@pytest.fixture(scope="session")
async def email_app(email_settings: Settings) -> AsyncIterator[IdentityApp]:
    app = await build_identity(
        email_settings, password_hasher=PasswordHasher(time_cost=1, memory_cost_kib=8192, parallelism=1)
    )
    await app.start(port=0, host="127.0.0.1")
    yield app
    await app.close(grace=1)


@pytest.fixture(scope="session")
async def identity(email_app: IdentityApp, email_db_url: str) -> AsyncIterator[IdentityClient]:
    assert email_app.running is not None
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{email_app.running.port}")
    db = await asyncpg.create_pool(email_db_url, min_size=1, max_size=5)
    assert db is not None
    yield IdentityClient(pb_grpc.IdentityServiceStub(channel), db)
    await db.close()
    await channel.close()


@pytest.fixture
async def campus(identity: IdentityClient) -> Campus:
    return await identity.new_campus()


@pytest.fixture(scope="session")
def courier(email_app: IdentityApp, email_settings: Settings) -> Courier:
    """The courier of the service, sending to ``mail_server``; tests drive it (``deliver``) or run it."""
    return Courier(email_app.pool, email_settings, COURIER_CONFIG)
