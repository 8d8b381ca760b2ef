"""Publishing a file to the import exchange the way an SIS connector does.

Rows are read incrementally (constant memory), grouped ``rows_per_message`` to a message, and
published persistently with publisher confirms; up to ``window`` publishes are in flight at once so
one-row messages are not limited by a confirm round trip each. The end message goes last, after
every row message was confirmed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aio_pika

from import_service.adapters.amqp.publisher import AmqpPublisher
from import_service.adapters.amqp.topology import Topology, declare
from import_service.adapters.files import row_reader_for
from import_service.domain.jobs import JobSpec
from import_service.domain.rows import FileFormat, FileRow

READ_BYTES = 256 * 1024
Progress = Callable[[int, int], None]  # (bytes read so far, rows published so far)


class WindowedPublisher:
    """Keeps at most ``window`` confirmed publishes in flight."""

    def __init__(self, publisher: AmqpPublisher, spec: JobSpec, window: int) -> None:
        self._publisher = publisher
        self._spec = spec
        self._slots = asyncio.Semaphore(window)
        self._tasks: set[asyncio.Task[None]] = set()
        self.rows_published = 0

    async def rows(self, rows: list[FileRow]) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._publish(rows))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, rows: list[FileRow]) -> None:
        try:
            await self._publisher.publish_rows(self._spec, rows)
            self.rows_published += len(rows)
        finally:
            self._slots.release()

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks)


async def publish_file(
    path: Path,
    spec: JobSpec,
    *,
    file_format: FileFormat,
    rows_per_message: int,
    amqp_url: str,
    prefix: str,
    window: int = 256,
    progress: Progress | None = None,
) -> int:
    """Publish every row of ``path`` and the end message; returns the number of rows published."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        topology = Topology(prefix)
        channel = await connection.channel()
        await declare(channel, topology)  # so nothing published before the service starts is lost
        await channel.close()
        publisher = await AmqpPublisher.open(connection, topology)
        sender = WindowedPublisher(publisher, spec, window)
        reader = row_reader_for(file_format)
        buffer: list[FileRow] = []
        read = 0
        with path.open("rb") as handle:
            while chunk := handle.read(READ_BYTES):
                read += len(chunk)
                buffer.extend(reader.feed(chunk))
                buffer = await _send_full(sender, buffer, rows_per_message)
                if progress:
                    progress(read, sender.rows_published)
        buffer.extend(reader.finish())
        buffer = await _send_full(sender, buffer, rows_per_message)
        if buffer:
            await sender.rows(buffer)
        await sender.drain()
        await publisher.publish_end(spec, sender.rows_published)
        if progress:
            progress(read, sender.rows_published)
        return sender.rows_published
    finally:
        await connection.close()


async def _send_full(sender: WindowedPublisher, buffer: list[FileRow], size: int) -> list[FileRow]:
    start = 0
    while len(buffer) - start >= size:
        await sender.rows(buffer[start : start + size])
        start += size
    return buffer[start:]
