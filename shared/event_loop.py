"""The services' event loop: uvloop's (libuv) in place of asyncio's default selector loop.

Both services spend much of their time in the loop itself (socket reads and writes, callbacks of
asyncpg, aio-pika and grpc.aio); uvloop runs that part in C. ``ROLLCALL_EVENT_LOOP=asyncio`` keeps
the standard loop (to compare, or to rule uvloop out when chasing a bug).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop unless ``ROLLCALL_EVENT_LOOP=asyncio`` (or uvloop is missing)."""
    if os.environ.get("ROLLCALL_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
