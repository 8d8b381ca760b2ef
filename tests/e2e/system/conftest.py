"""One process stack (identity + import as processes, real broker, real PostgreSQL) shared by the
system tests; each test works in a school of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.process_stack import ProcessStack, process_stack


@pytest.fixture(scope="session")
async def system_stack(pg_server_url: str, amqp_url: str, amqp_prefix: str) -> AsyncIterator[ProcessStack]:
    async with process_stack(pg_server_url, amqp_url, f"{amqp_prefix}_sys", relays=True) as stack:
        yield stack


@pytest.fixture
async def stack(system_stack: ProcessStack) -> ProcessStack:
    """The shared stack, both services SERVING (a test that stops one starts it again)."""
    for name, service in system_stack.services.items():
        if not service.running:
            await system_stack.start(name)
    return system_stack
