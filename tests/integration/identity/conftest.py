"""The identity service for integration tests: built on the session's migrated database, started
in-process on a free port with test tokens, and a client helper (``identity``) talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from identity_service.bootstrap import IdentityApp
from shared.settings import Settings
from tests.integration.identity.identity_support import (
    IdentityClient,
    identity_client,
    running_identity,
    service_settings,
)


@pytest.fixture(scope="session")
def identity_settings(identity_db_url: str) -> Settings:
    return service_settings(identity_db_url, db_pool_max=20)


@pytest.fixture(scope="session")
async def identity_app(identity_settings: Settings) -> AsyncIterator[IdentityApp]:
    """The running service (``identity_app.running.port``); argon2id with test-sized costs."""
    async with running_identity(identity_settings) as app:
        yield app


@pytest.fixture(scope="session")
async def identity(identity_app: IdentityApp, identity_db_url: str) -> AsyncIterator[IdentityClient]:
    async with identity_client(identity_app, identity_db_url) as client:
        yield client
