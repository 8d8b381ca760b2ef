"""The identity service for integration tests: built on the session's migrated database, started
in-process on a free port with test tokens, and a client helper (``identity``) talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from identity_service.bootstrap import IdentityApp
from shared.settings import Settings
from tests.integration.identity.identity_support import (
    TOKEN_SPEC,
    Campus,
    IdentityClient,
    identity_client,
    running_identity,
)


@pytest.fixture(scope="session")
def identity_settings(identity_db_url: str) -> Settings:
    return Settings(
        identity_database_url=identity_db_url,
        tokens=TOKEN_SPEC,
        identity_metrics_port=0,
        db_pool_max=20,
        shutdown_grace_seconds=1,
    )


@pytest.fixture(scope="session")
async def identity_app(identity_settings: Settings) -> AsyncIterator[IdentityApp]:
    """The running service (``identity_app.running.port``); argon2id with test-sized costs."""
    async with running_identity(identity_settings) as app:
        yield app


@pytest.fixture(scope="session")
async def identity(identity_app: IdentityApp, identity_db_url: str) -> AsyncIterator[IdentityClient]:
    async with identity_client(identity_app, identity_db_url) as client:
        yield client


@pytest.fixture
async def campus(identity: IdentityClient) -> Campus:
    """A fresh school with one active staff member (``campus.staff_md`` acts as them)."""
    return await identity.new_campus()
