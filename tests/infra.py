"""Where the tests find PostgreSQL and RabbitMQ (operations.md, "make test").

Order: ``ROLLCALL_TEST_DATABASE_URL`` / ``ROLLCALL_TEST_AMQP_URL``; else the local defaults when
they answer; else testcontainers when a Docker engine answers; else one clear line saying what to
start. Every test session gets its own databases and its own queue-name prefix.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from shared.pg import migrate, with_database

LOCAL_PG = "postgresql://localhost:5432/postgres"
LOCAL_AMQP = "amqp://guest:guest@localhost:5672/"
ROOT = Path(__file__).resolve().parent.parent
IDENTITY_MIGRATIONS = (ROOT / "identity_service/adapters/postgres/migrations", 7_001)
IMPORT_MIGRATIONS = (ROOT / "import_service/adapters/postgres/migrations", 7_002)


def answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or default_port), 1.0):
            return True
    except OSError:
        return False


def docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def find_postgres(stack: ExitStack) -> str:
    url = os.environ.get("ROLLCALL_TEST_DATABASE_URL")
    if url:
        return url
    if answers(LOCAL_PG, 5432):
        return LOCAL_PG
    if docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = stack.enter_context(PostgresContainer("postgres:16-alpine", driver=None))
        return str(container.get_connection_url())
    raise RuntimeError(
        "PostgreSQL not found: start it on localhost:5432 or set ROLLCALL_TEST_DATABASE_URL "
        "(or run a Docker engine for testcontainers)"
    )


def find_rabbitmq(stack: ExitStack) -> str:
    url = os.environ.get("ROLLCALL_TEST_AMQP_URL")
    if url:
        return url
    if answers(LOCAL_AMQP, 5672):
        return LOCAL_AMQP
    if docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        container = stack.enter_context(RabbitMqContainer("rabbitmq:3.13-management-alpine"))
        host, port = container.get_container_host_ip(), container.get_exposed_port(container.port)
        return f"amqp://guest:guest@{host}:{port}/"
    raise RuntimeError(
        "RabbitMQ not found: start it on localhost:5672 or set ROLLCALL_TEST_AMQP_URL "
        "(or run a Docker engine for testcontainers)"
    )


def session_tag() -> str:
    return f"rctest_{uuid.uuid4().hex[:10]}"


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def migrated_database(server_url: str, name: str, migrations: tuple[Path, int]) -> AsyncIterator[str]:
    """A fresh database ``name`` on the server, migrated from ``migrations`` (folder, lock key); its URL
    while the block runs, dropped afterwards."""
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server_url, name)
        folder, lock_key = migrations
        await migrate(url, folder, lock_key=lock_key)
        yield url
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
