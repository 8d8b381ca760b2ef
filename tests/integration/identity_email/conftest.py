"""Fixtures of the email-change tests: an identity service on its own database (so its outbox is
this folder's alone), a real SMTP server (aiosmtpd) in-process, and a courier that sends to it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from identity_service.bootstrap import IdentityApp, build_courier
from identity_service.service.courier import Courier
from shared.settings import Settings
from tests.infra import IDENTITY_MIGRATIONS, migrated_database
from tests.integration.identity.identity_support import (
    IdentityClient,
    identity_client,
    running_identity,
    service_settings,
)
from tests.integration.identity_email.email_support import CODE_SECRETS, COURIER_CONFIG
from tests.integration.identity_mail.mail_helpers import SmtpServer


@pytest.fixture(scope="session")
async def email_db_url(pg_server_url: str) -> AsyncIterator[str]:
    name = f"rctest_email_{uuid.uuid4().hex[:10]}"
    async with migrated_database(pg_server_url, name, IDENTITY_MIGRATIONS) as url:
        yield url


@pytest.fixture(scope="session")
def mail_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def email_settings(email_db_url: str, mail_server: SmtpServer) -> Settings:
    return service_settings(
        email_db_url,
        db_pool_max=30,
        smtp_host="127.0.0.1",
        smtp_port=mail_server.port,
        mail_from="careers@rollcall.example",
        code_secret=list(CODE_SECRETS),
        code_lifetime_hours=24,
    )


@pytest.fixture(scope="session")
async def email_app(email_settings: Settings) -> AsyncIterator[IdentityApp]:
    async with running_identity(email_settings) as app:
        yield app


@pytest.fixture(scope="session")
async def identity(email_app: IdentityApp, email_db_url: str) -> AsyncIterator[IdentityClient]:
    async with identity_client(email_app, email_db_url) as client:
        yield client


@pytest.fixture(scope="session")
def courier(email_app: IdentityApp, email_settings: Settings) -> Courier:
    """The courier of the service, sending to ``mail_server``; tests drive it (``deliver``) or run it."""
    return build_courier(email_app.pool, email_settings, COURIER_CONFIG)
