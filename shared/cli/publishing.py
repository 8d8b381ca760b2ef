"""Publishing a file to the import exchange the way an SIS connector does.

Rows are read incrementally (constant memory), grouped ``rows_per_message`` to a message, and
published persistently with publisher confirms; ``window`` publishers take the next message as soon
as their previous one is confirmed, so one-row messages are not limited by a confirm round trip
each (and no task is made per message: at one row a message that showed in profiles). Every message
carries the job's ``job_spec``: school, mode and flags (``full_roster`` among them). The end
message goes last, after every row message was confirmed. Every message carries ``user_id``: the
AMQP user of the URL (the import service accepts a school's rows only from a connector allowed for
it, ``ROLLCALL_CONNECTORS``). A connector user with write-only permissions may not declare the
topology; publishing then goes on, relying on the service having declared it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import aio_pika
import aiormq

from import_service.domain.jobs import ImportMode, JobSpec
from import_service.domain.rows import FileFormat, FileRow
from shared import tracing
from shared.amqp.publisher import AmqpPublisher, amqp_user
from shared.amqp.topology import Topology, declare
from shared.files import row_reader_for

READ_BYTES = 256 * 1024
Progress = Callable[[int, int], None]  # (bytes read so far, rows published so far)


def job_spec(
    *,
    job_id: str,
    school_id: str,
    manual: bool,
    sensitive: bool = False,
    dry_run: bool = False,
    full_roster: bool = False,
    source_name: str = "",
) -> JobSpec:
    """The job a published file is: a full roster (``full_roster``) archives, when the job completes,
    the school's file students it does not name, and is guarded like a sensitive file."""
    return JobSpec(
        job_id=job_id,
        school_id=school_id,
        mode=ImportMode.MANUAL_FILE if manual else ImportMode.ONGOING_SYNC,
        sensitive_fields_update=sensitive,
        dry_run=dry_run,
        source_name=source_name,
        full_roster=full_roster,
    )


class FileMessages:
    """The rows of a file as messages of ``size`` rows, read as the publishers ask for them.

    A plain iterator: many publishers may share it, since taking the next message never waits.
    """

    def __init__(self, handle: BinaryIO, file_format: FileFormat, size: int) -> None:
        self.bytes_read = 0
        self.rows_published = 0
        self.progress: Progress | None = None
        self._messages = self._read(handle, file_format, size)

    def __iter__(self) -> Iterator[list[FileRow]]:
        return self._messages

    def _read(self, handle: BinaryIO, file_format: FileFormat, size: int) -> Iterator[list[FileRow]]:
        reader = row_reader_for(file_format)
        buffer: list[FileRow] = []
        while chunk := handle.read(READ_BYTES):
            self.bytes_read += len(chunk)
            buffer.extend(reader.feed(chunk))
            full = len(buffer) - len(buffer) % size
            for start in range(0, full, size):
                yield buffer[start : start + size]
            buffer = buffer[full:]
            self.report()
        buffer.extend(reader.finish())
        for start in range(0, len(buffer), size):
            yield buffer[start : start + size]

    def report(self) -> None:
        if self.progress:
            self.progress(self.bytes_read, self.rows_published)


async def publish_messages(
    publisher: AmqpPublisher, spec: JobSpec, messages: FileMessages, window: int
) -> None:
    """Publishes every message with ``window`` publishes in flight; the first failure stops them all."""

    async def publish_next() -> None:
        for rows in messages:
            await publisher.publish_rows(spec, rows)
            messages.rows_published += len(rows)

    workers = [asyncio.create_task(publish_next()) for _ in range(window)]
    try:
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def _declare_if_allowed(connection: aio_pika.abc.AbstractRobustConnection, topology: Topology) -> None:
    """Declares the topology so nothing published before the service starts is lost; a connector
    user without configure permission is refused (ACCESS_REFUSED), and the service declares it."""
    channel = await connection.channel()
    try:
        await declare(channel, topology)
    except aiormq.exceptions.ChannelAccessRefused:
        return  # the broker closed this channel; the connection stays usable
    await channel.close()


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
    """Publish every row of ``path`` and the end message; returns the number of rows published.
    With tracing on, one span (``publish file``) is the parent of every message's publish span."""
    with tracing.span("publish file", job_id=spec.job_id, school_id=spec.school_id, file=path.name):
        return await _publish_file(
            path, spec, file_format, rows_per_message, amqp_url, prefix, window, progress
        )


async def _publish_file(
    path: Path,
    spec: JobSpec,
    file_format: FileFormat,
    rows_per_message: int,
    amqp_url: str,
    prefix: str,
    window: int,
    progress: Progress | None,
) -> int:
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        topology = Topology(prefix)
        await _declare_if_allowed(connection, topology)
        publisher = await AmqpPublisher.open(connection, topology, amqp_user(amqp_url))
        with path.open("rb") as handle:
            messages = FileMessages(handle, file_format, rows_per_message)
            messages.progress = progress
            await publish_messages(publisher, spec, messages, window)
        await publisher.publish_end(spec, messages.rows_published)
        messages.report()
        return messages.rows_published
    finally:
        await connection.close()
