"""Waiting out an outage: call again with capped exponential backoff (and jitter) until it answers.

An outage of identity or of the database never fails a row: the batch waits and is tried again.
Shutdown ends the wait by cancelling the task; its messages stay unacknowledged for redelivery.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from shared.logging import get_logger

T = TypeVar("T")
log = get_logger("import.retry")


@dataclass(frozen=True)
class Backoff:
    initial_seconds: float = 0.1
    cap_seconds: float = 2.0

    def next(self, delay: float) -> float:
        return min(delay * 2, self.cap_seconds)


async def until_answered(
    call: Callable[[], Awaitable[T]],
    transient: tuple[type[BaseException], ...],
    backoff: Backoff,
    what: str,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """``await call()``, retrying forever on ``transient`` errors."""
    delay = backoff.initial_seconds
    attempt = 0
    while True:
        try:
            return await call()
        except transient as exc:
            attempt += 1
            if attempt == 1 or attempt % 10 == 0:
                log.warning("retry.waiting", what=what, attempt=attempt, error=type(exc).__name__)
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = backoff.next(delay)
