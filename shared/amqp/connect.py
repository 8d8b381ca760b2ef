"""Robust connections to a broker known by several URLs (the nodes of a cluster).

``ROLLCALL_AMQP_URL`` may list several URLs, comma-separated. ``connect_robust_any`` connects to the
first that answers and, when the connection is lost, aio-pika's robust reconnect tries the URLs in
turn, starting with the one after the node that went away, so consumers and publishers come back on
another node by themselves (channels, queues and consumers restored as usual).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aio_pika.robust_connection import RobustConnection
from yarl import URL


def split_urls(spec: str) -> list[str]:
    """``"amqp://a/,amqp://b/"`` → ``["amqp://a/", "amqp://b/"]`` (blanks dropped)."""
    return [part.strip() for part in spec.split(",") if part.strip()]


class MultiUrlRobustConnection(RobustConnection):
    """A ``RobustConnection`` whose every reconnect attempt moves on to the next of its URLs.

    aio-pika clears ``transport`` right before each (re)connect attempt of its connection factory;
    that is where the URL rotates (never for the first attempt, nor on ``close``).
    """

    def __init__(self, url: URL, loop: Any = None, *, urls: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(url, loop=loop, **kwargs)
        self.urls: tuple[URL, ...] = tuple(URL(u) for u in urls) or (self.url,)
        self._url_index = 0
        self._attempts = 0

    @property
    def transport(self) -> Any:
        return self.__dict__.get("_transport")

    @transport.setter
    def transport(self, value: Any) -> None:
        if value is None and "urls" in self.__dict__ and not self._close_called:
            if self._attempts:
                self._url_index = (self._url_index + 1) % len(self.urls)
                self.url = self.urls[self._url_index]
            self._attempts += 1
        self.__dict__["_transport"] = value


async def connect_robust_any(
    urls: str | Sequence[str],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - aio-pika's per-attempt connect timeout
    **kwargs: Any,
) -> AbstractRobustConnection:
    """A robust connection to the first of ``urls`` that answers (a comma-separated string or a
    list), reconnecting to them in turn when it is lost. The last refusal is raised when none answers."""
    candidates = split_urls(urls) if isinstance(urls, str) else [u for u in urls if u]
    if not candidates:
        raise ValueError("no broker URL")
    error: BaseException | None = None
    for start in range(len(candidates)):
        ordered = candidates[start:] + candidates[:start]
        connection = MultiUrlRobustConnection(URL(ordered[0]), urls=ordered, **kwargs)
        try:
            await connection.connect(timeout=timeout)
            return connection
        except (OSError, TimeoutError, ConnectionError, aio_pika.exceptions.AMQPConnectionError) as exc:
            error = exc
            await connection.close()
    assert error is not None
    raise error
