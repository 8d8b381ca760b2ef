"""The identity service for integration tests: built on the session's migrated database, started
in-process on a free port with test tokens, and a client helper (``identity``) talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from identity_service.bootstrap import IdentityApp, build_identity
from identity_service.domain.passwords import PasswordHasher
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.settings import Settings
from tests.integration.identity.identity_support import TOKEN_SPEC, Campus, IdentityClient


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
    app = await build_identity(
        identity_settings, password_hasher=PasswordHasher(time_cost=1, memory_cost_kib=8192, parallelism=1)
    )
    await app.start(port=0, host="127.0.0.1")
    yield app
    await app.close(grace=1)


@pytest.fixture(scope="session")
async def identity(identity_app: IdentityApp, identity_db_url: str) -> AsyncIterator[IdentityClient]:
    assert identity_app.running is not None
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{identity_app.running.port}")
    db = await asyncpg.create_pool(identity_db_url, min_size=1, max_size=5)
    assert db is not None
    yield IdentityClient(pb_grpc.IdentityServiceStub(channel), db)
    await db.close()
    await channel.close()


@pytest.fixture
async def campus(identity: IdentityClient) -> Campus:
    """A fresh school with one active staff member (``campus.staff_md`` acts as them)."""
    return await identity.new_campus()
