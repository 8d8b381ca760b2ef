"""Each fault test gets a stack of its own (its own databases and queue prefix): faults leave
state behind (killed processes, redelivered messages) that another test must not see."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from tests.faults.fault_report import FIGURES
from tests.process_stack import ProcessStack, process_stack


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The figures fault tests reported (``fault_report.report``), one line each, after the run."""
    if lines := config.stash.get(FIGURES, []):
        terminalreporter.section("fault figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
async def fault_stack(
    request: pytest.FixtureRequest, pg_server_url: str, amqp_url: str, amqp_prefix: str
) -> AsyncIterator[ProcessStack]:
    short = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:6]
    async with process_stack(pg_server_url, amqp_url, f"{amqp_prefix}_f{short}") as stack:
        yield stack
