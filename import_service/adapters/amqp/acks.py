"""Acknowledging deliveries of one channel, coalescing in-order runs into one ``multiple`` ack.

A batch of 500 one-row messages finishes at once; acknowledging them one frame each costs as much
as consuming them. When acknowledgements are ready, the window sends them at the next turn of the
event loop: the longest run of ready deliveries starting at the oldest outstanding one becomes a
single ``basic.ack(multiple=True)`` of its last tag (only ever a tag not yet acknowledged, and only
when every older outstanding delivery is ready too); the others are acknowledged one by one, so a
slow message never holds back the acknowledgement of later ones.
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractIncomingMessage

from shared.logging import get_logger

log = get_logger("import.acks")


class AckWindow:
    def __init__(self) -> None:
        self._outstanding: dict[int, AbstractIncomingMessage] = {}
        self._ready: set[int] = set()
        self._last_tag = 0
        self._ordered = True
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    def delivered(self, message: AbstractIncomingMessage) -> None:
        """Called in delivery order, before anything else happens to the message."""
        tag = message.delivery_tag or 0
        if tag <= self._last_tag:
            self._ordered = False  # never expected; coalescing would be unsafe, so stop doing it
        self._last_tag = max(self._last_tag, tag)
        self._outstanding[tag] = message

    def ack(self, message: AbstractIncomingMessage) -> None:
        """Marks the delivery acknowledged; the frame goes out at the next turn of the loop."""
        self._ready.add(message.delivery_tag or 0)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def requeue(self, message: AbstractIncomingMessage) -> None:
        self._outstanding.pop(message.delivery_tag or 0, None)
        await message.nack(requeue=True)

    def _flush(self) -> None:
        self._scheduled = False
        ready, self._ready = self._ready, set()
        run: list[int] = []
        if self._ordered:
            for tag in self._outstanding:
                if tag not in ready:
                    break
                run.append(tag)
        last = self._outstanding[run[-1]] if run else None
        for tag in run:
            del self._outstanding[tag]
            ready.discard(tag)
        singles = [self._outstanding.pop(tag) for tag in sorted(ready) if tag in self._outstanding]
        task = asyncio.create_task(_send(last, singles))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def wait_sent(self) -> None:
        """Lets acknowledgements already decided reach the socket (before the channel closes)."""
        await asyncio.sleep(0)
        if self._sending:
            await asyncio.wait(set(self._sending))


async def _send(last: AbstractIncomingMessage | None, singles: list[AbstractIncomingMessage]) -> None:
    try:
        if last is not None:
            await last.ack(multiple=True)
        for message in singles:
            await message.ack()
    except Exception as exc:  # the channel closed: the broker redelivers; recorded rows are skipped
        log.warning("import.ack_failed", error=type(exc).__name__)
