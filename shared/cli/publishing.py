"""Publishing a file to the import exchange the way an SIS connector does.

Rows are read incrementally (constant memory), grouped ``rows_per_message`` to a message, and
published persistently with publisher confirms; ``window`` publishers take the next message as soon
as their previous one is confirmed, so one-row messages are not limited by a confirm round trip
each (and no task is made per message: at one row a message that showed in profiles). Every message
carries the job's ``job_spec``: school, mode and flags (``full_roster`` among them). The end
message goes last, after every row message was confirmed. Every message carries ``user_id``: the
AMQP user of the URL (the import service accepts a school's rows only from a connector allowed for
it, ``ROLLCALL_CONNECTORS``).

Nothing is declared: the exchange ``<prefix>.import`` is checked passively before the first
message, so a mistyped prefix is an error naming the exchange, not a new topology whose queue no
service reads (the import service declares the topology when it starts). ``preflight`` (the CLI:
the school exists) runs before the broker is contacted. Broker problems raise ``CliError`` naming
the URL with its password masked; a file that cannot be read raises it too, saying how many rows
were published before (publishing the same file again with the same job id is safe: rows sent
again count once). OneRoster rows the reader drops (not students, other statuses) are counted in
``skipped``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import aio_pika
import aiormq

from import_service.domain.jobs import ImportMode, JobSpec
from import_service.domain.rows import FileFormat, FileFormatError, FileRow
from shared import tracing
from shared.amqp.connect import connect_robust_any
from shared.amqp.publisher import AmqpPublisher, amqp_user
from shared.amqp.topology import Topology
from shared.cli.failures import (
    BROKER_ACCESS_REFUSED,
    BROKER_LOGIN_REFUSED,
    BROKER_UNREACHABLE,
    EXCHANGE_NOT_FOUND,
    INVALID_FILE,
    PUBLISH_FAILED,
    CliError,
    mask_url,
    without_secret,
)
from shared.cli.skipped_rows import SkippedRows, counting_reader
from shared.errors import RollcallError

READ_BYTES = 256 * 1024
CONNECT_TIMEOUT_SECONDS = 15.0
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

    def __init__(
        self, handle: BinaryIO, file_format: FileFormat, size: int, skipped: SkippedRows | None = None
    ) -> None:
        self.bytes_read = 0
        self.rows_published = 0
        self.progress: Progress | None = None
        self.skipped = skipped if skipped is not None else SkippedRows()
        self._messages = self._read(handle, file_format, size)

    def __iter__(self) -> Iterator[list[FileRow]]:
        return self._messages

    def _read(self, handle: BinaryIO, file_format: FileFormat, size: int) -> Iterator[list[FileRow]]:
        reader = counting_reader(file_format, self.skipped)
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
    """Publishes every message with ``window`` publishes in flight; the first failure to publish stops
    them all. A file the reader cannot go on with (``FileFormatError``) ends the reading: the
    messages already in flight are confirmed first, so ``rows_published`` is exact, then it raises."""
    unreadable: list[FileFormatError] = []

    async def publish_next() -> None:
        try:
            for rows in messages:  # once the reader raised, the others find the file at its end
                await publisher.publish_rows(spec, rows)
                messages.rows_published += len(rows)
        except FileFormatError as problem:
            unreadable.append(problem)

    workers = [asyncio.create_task(publish_next()) for _ in range(window)]
    try:
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if unreadable:
        raise unreadable[0]


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
    preflight: Callable[[], Awaitable[object]] | None = None,
    skipped: SkippedRows | None = None,
) -> int:
    """Publish every row of ``path`` and the end message; returns the number of rows published.
    ``preflight`` runs first (nothing is published when it raises); the rows a OneRoster file drops
    are counted in ``skipped``. With tracing on, one span (``publish file``) is the parent of every
    message's publish span."""
    if preflight is not None:
        await preflight()
    with tracing.span("publish file", job_id=spec.job_id, school_id=spec.school_id, file=path.name):
        return await _publish_file(
            path, spec, file_format, rows_per_message, amqp_url, prefix, window, progress, skipped
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
    skipped: SkippedRows | None,
) -> int:
    topology = Topology(prefix)
    connection = await connect(amqp_url)
    try:
        await check_exchange(connection, topology.exchange, amqp_url)
        try:
            publisher = await AmqpPublisher.open(connection, topology, amqp_user(amqp_url))
        except aiormq.exceptions.AMQPError as exc:
            raise broker_error(exc, amqp_url, topology.exchange) from None
        with path.open("rb") as handle:
            messages = FileMessages(handle, file_format, rows_per_message, skipped)
            messages.progress = progress
            try:
                await publish_messages(publisher, spec, messages, window)
                await publisher.publish_end(spec, messages.rows_published)
            except FileFormatError as problem:
                raise _stopped(INVALID_FILE, f"{path.name}: {problem}", spec, messages, "") from None
            except RollcallError as refused:
                where = f"publishing to {topology.exchange} on {mask_url(amqp_url)}: "
                text = where + without_secret(refused.message, amqp_url)
                raise _stopped(PUBLISH_FAILED, text, spec, messages, mask_url(amqp_url)) from None
        messages.report()
        return messages.rows_published
    finally:
        with contextlib.suppress(Exception):  # a broken connection: the error above is what matters
            await connection.close()


def _stopped(reason: str, text: str, spec: JobSpec, messages: FileMessages, url: str) -> CliError:
    """Publishing stopped part way: what was published, and that publishing again is safe. A file
    problem waited for the messages in flight, so its count is exact; a broker failure cut them
    short, so some beyond the count may have arrived: it always says how to publish again."""
    unreadable = reason == INVALID_FILE
    code = "INVALID_ARGUMENT" if unreadable else "UNAVAILABLE"
    done = messages.rows_published
    details = {"jobId": spec.job_id, "rowsPublished": done} | ({"url": url} if url else {})
    again = f"publish the file again with --job-id {spec.job_id} (rows sent again count once)"
    if unreadable and not done:
        text += "; nothing was published"
    elif unreadable:
        text += f"; {done} rows were published as job {spec.job_id}, without its end: {again}"
    else:
        text += f"; {done} rows were confirmed as job {spec.job_id}, without its end: {again}"
    return CliError(code, reason, text, details)


async def connect(amqp_url: str) -> aio_pika.abc.AbstractRobustConnection:
    """A connection to the broker; a refusal or no answer is a ``CliError`` naming the (masked) URL."""
    try:
        return await connect_robust_any(amqp_url, timeout=CONNECT_TIMEOUT_SECONDS)
    except (aiormq.exceptions.AMQPError, OSError, TimeoutError, ValueError) as exc:
        raise broker_error(exc, amqp_url) from None


async def check_exchange(
    connection: aio_pika.abc.AbstractRobustConnection, exchange: str, amqp_url: str
) -> None:
    """Declares ``exchange`` passively (it is never created): a missing one is NOT_FOUND naming it."""
    channel = await connection.channel()
    try:
        await channel.get_exchange(exchange, ensure=True)
    except aiormq.exceptions.AMQPError as exc:
        raise broker_error(exc, amqp_url, exchange) from None
    with contextlib.suppress(Exception):
        await channel.close()


def broker_error(error: BaseException, amqp_url: str, exchange: str = "") -> CliError:
    """One line for a broker problem, naming the URL (password masked) and the exchange if any."""
    url = mask_url(amqp_url)
    details = {"url": url} | ({"exchange": exchange} if exchange else {})
    text = _broker_text(error, amqp_url)
    if isinstance(error, aiormq.exceptions.ChannelNotFoundEntity) and exchange:
        message = (
            f"no exchange '{exchange}' on {url} (is --prefix right, and has the import service "
            "started once to declare it?)"
        )
        return CliError("NOT_FOUND", EXCHANGE_NOT_FOUND, message, details)
    if isinstance(
        error, aiormq.exceptions.ProbableAuthenticationError | aiormq.exceptions.AuthenticationError
    ):
        return CliError(
            "UNAUTHENTICATED", BROKER_LOGIN_REFUSED, f"the broker at {url} refused the login: {text}", details
        )
    if isinstance(error, aiormq.exceptions.ChannelAccessRefused):
        what = f"exchange '{exchange}'" if exchange else "the operation"
        return CliError(
            "PERMISSION_DENIED", BROKER_ACCESS_REFUSED, f"the broker at {url} refused {what}: {text}", details
        )
    if isinstance(error, aiormq.exceptions.ProtocolSyntaxError):
        message = (  # the library's words name a frame object, no help: say what it usually is
            f"the broker at {url} closed the connection while opening it "
            "(does the URL's vhost exist, and may the user use it?)"
        )
        return CliError("UNAVAILABLE", BROKER_UNREACHABLE, message, details)
    if isinstance(error, ValueError):
        return CliError("INVALID_ARGUMENT", BROKER_UNREACHABLE, f"not a broker URL: {url}: {text}", details)
    return CliError(
        "UNAVAILABLE", BROKER_UNREACHABLE, f"cannot connect to the broker at {url}: {text}", details
    )


def _broker_text(error: BaseException, amqp_url: str) -> str:
    """The library's own words for ``error``, one line, never the password."""
    args = [str(a) for a in getattr(error, "args", ()) if str(a)]
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        text = f"[Errno {error.errno}] {error.strerror}"
    elif isinstance(error, aiormq.exceptions.AMQPConnectionError) and len(args) >= 2:
        text = f"[Errno {args[0]}] {args[1]}" if args[0].lstrip("-").isdigit() else " ".join(args)
    else:
        text = " ".join(args) or type(error).__name__
    return without_secret(" ".join(text.split()), amqp_url)
