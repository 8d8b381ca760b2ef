"""``rollcall import upload FILE``: the file through SubmitFile (header, then byte chunks), as staff
upload it in the web app; the import service reads it and publishes its rows itself. The CLI reads
the same chunks alongside to count the OneRoster rows the service will drop (``skipped``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from import_service.domain.rows import FileFormat
from shared.cli.clients import Target
from shared.cli.skipped_rows import SkipCounter, SkippedRows
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

CHUNK_BYTES = 256 * 1024  # SubmitFile takes chunks of at most 1 MiB


def upload_header(
    *,
    school_id: str,
    manual: bool,
    sensitive: bool = False,
    dry_run: bool = False,
    full_roster: bool = False,
    oneroster: bool = False,
    source_name: str = "",
) -> pb.FileHeader:
    """SubmitFile's first message; ``full_roster``: the file is the school's whole student list."""
    return pb.FileHeader(
        school_id=school_id,
        mode=rows_pb.IMPORT_MODE_MANUAL_FILE if manual else rows_pb.IMPORT_MODE_ONGOING_SYNC,
        sensitive_fields_update=sensitive,
        dry_run=dry_run,
        source_name=source_name,
        format=pb.FILE_FORMAT_ONEROSTER_USERS if oneroster else pb.FILE_FORMAT_CSV,
        full_roster=full_roster,
    )


async def _messages(
    header: pb.FileHeader, path: Path, sent: Callable[[int], None], counter: SkipCounter
) -> AsyncIterator[pb.SubmitFileRequest]:
    yield pb.SubmitFileRequest(header=header)
    done = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            done += len(chunk)
            counter.feed(chunk)
            yield pb.SubmitFileRequest(chunk=chunk)
            sent(done)
    counter.finish()


async def upload_file(
    target: Target,
    path: Path,
    header: pb.FileHeader,
    sent: Callable[[int], None],
    skipped: SkippedRows | None = None,
) -> pb.ImportJob:
    """Streams ``path`` after ``header``; ``sent(bytes)`` after each chunk. Returns the new job. The
    OneRoster rows the service drops are counted in ``skipped``."""
    oneroster = header.format == pb.FILE_FORMAT_ONEROSTER_USERS
    counter = SkipCounter(FileFormat.ONEROSTER_USERS if oneroster else FileFormat.CSV, skipped)
    channel, stub = target.importer()
    try:
        messages = _messages(header, path, sent, counter)
        return await stub.SubmitFile(messages, metadata=target.metadata(), timeout=3600)
    finally:
        await channel.close()
