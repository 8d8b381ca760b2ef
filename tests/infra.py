"""Where the tests find PostgreSQL and RabbitMQ (operations.md, "make test").

Order: ``ROLLCALL_TEST_DATABASE_URL`` / ``ROLLCALL_TEST_AMQP_URL``; else the local defaults when
they answer; else testcontainers when a Docker engine answers; else one clear line saying what to
start. Every test session gets its own databases and its own queue-name prefix.
"""

from __future__ import annotations

import os
import socket
import uuid
from contextlib import ExitStack
from urllib.parse import urlsplit

LOCAL_PG = "postgresql://localhost:5432/postgres"
LOCAL_AMQP = "amqp://guest:guest@localhost:5672/"


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
