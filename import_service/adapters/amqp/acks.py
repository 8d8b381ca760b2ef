"""Acknowledging deliveries of one channel, coalescing in-order runs into one ``multiple`` ack.

A batch of 500 one-row messages finishes at once; acknowledging them one frame each costs as much
as consuming them. When acknowledgements are ready, the window sends them at the next turn of the
event loop: the longest run of ready deliveries starting at the oldest outstanding one becomes a
single ``basic.ack(multiple=True)`` of its last tag (only ever a tag not yet acknowledged, and only
when every older outstanding delivery is ready too); the others are acknowledged one by one, so a
slow message never holds back the acknowledgement of later ones.

Frames go out strictly in the order the window decided them, by one sender at a time: a later
``multiple`` ack covers deliveries an earlier turn acknowledged one by one, and if it overtook those
single acks the broker would find their tags gone and close the channel ("unknown delivery tag",
then every unacknowledged message redelivered).

The window works on delivery tags and the channel's ``basic_ack`` / ``basic_nack`` (aiormq's, the
channel the deliveries came on): it keeps no message object per delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

from shared.logging import get_logger

log = get_logger("import.acks")


class AckChannel(Protocol):
    """What the window needs of the channel the deliveries came on (aiormq's ``Channel``)."""

    def basic_ack(
        self, delivery_tag: int, multiple: bool = False, wait: bool = True
    ) -> Awaitable[object]: ...

    def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True, wait: bool = True
    ) -> Awaitable[object]: ...


class AckWindow:
    def __init__(self, channel: AckChannel) -> None:
        self._channel = channel
        self._outstanding: dict[int, None] = {}  # delivery tags in delivery order
        self._ready: set[int] = set()
        self._last_tag = 0
        self._ordered = True
        self._scheduled = False
        self._pending: list[tuple[int | None, list[int]]] = []
        self._sender: asyncio.Task[None] | None = None

    @property
    def channel(self) -> AckChannel:
        return self._channel

    def delivered(self, tag: int) -> None:
        """Called in delivery order, before anything else happens to the delivery."""
        if tag <= self._last_tag:
            self._ordered = False  # never expected; coalescing would be unsafe, so stop doing it
        self._last_tag = max(self._last_tag, tag)
        self._outstanding[tag] = None

    def ack(self, tag: int) -> None:
        """Marks the delivery acknowledged; the frame goes out at the next turn of the loop."""
        self._ready.add(tag)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def requeue(self, tag: int) -> None:
        self._outstanding.pop(tag, None)
        await self._channel.basic_nack(tag, requeue=True)

    def _flush(self) -> None:
        self._scheduled = False
        ready, self._ready = self._ready, set()
        run: list[int] = []
        if self._ordered:
            for tag in self._outstanding:
                if tag not in ready:
                    break
                run.append(tag)
        last = run[-1] if run else None
        for tag in run:
            del self._outstanding[tag]
            ready.discard(tag)
        singles = [tag for tag in sorted(ready) if tag in self._outstanding]
        for tag in singles:
            del self._outstanding[tag]
        self._pending.append((last, singles))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_in_order())

    async def wait_sent(self) -> None:
        """Lets acknowledgements already decided reach the socket (before the channel closes)."""
        await asyncio.sleep(0)
        if self._sender is not None and not self._sender.done():
            await asyncio.wait({self._sender})

    async def _send_in_order(self) -> None:
        while self._pending:
            last, singles = self._pending.pop(0)
            try:
                if last is not None:
                    await self._channel.basic_ack(last, multiple=True)
                for tag in singles:
                    await self._channel.basic_ack(tag)
            except Exception as exc:  # the channel closed: the broker redelivers; recorded rows are skipped
                log.warning("import.ack_failed", error=type(exc).__name__)
