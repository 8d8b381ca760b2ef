"""``ports.MailNotices`` over PostgreSQL's LISTEN: a use case's ``NOTIFY outbox`` wakes the courier."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import asyncpg

from identity_service.adapters.postgres.outbox import NOTIFY_CHANNEL
from identity_service.service.courier import describe_failure
from shared.logging import get_logger

log = get_logger("courier")


class PostgresMailNotices:
    """One listening connection of its own (not the pool's), opened again when it was lost."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._listener: asyncpg.Connection | None = None

    async def listen(self, wake: Callable[[], None]) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = None
        try:
            conn = await asyncpg.connect(self._url, timeout=5)
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: wake())
            self._listener = conn
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("courier.listen_failed", error=describe_failure(exc))

    async def close(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
