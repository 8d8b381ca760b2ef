"""``rollcall import upload FILE``: the file through SubmitFile (header, then byte chunks), as staff
upload it in the web app; the import service reads it and publishes its rows itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from shared.cli.clients import Target
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

CHUNK_BYTES = 256 * 1024  # SubmitFile takes chunks of at most 1 MiB


async def _messages(
    header: pb.FileHeader, path: Path, sent: Callable[[int], None]
) -> AsyncIterator[pb.SubmitFileRequest]:
    yield pb.SubmitFileRequest(header=header)
    done = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            done += len(chunk)
            yield pb.SubmitFileRequest(chunk=chunk)
            sent(done)


async def upload_file(
    target: Target, path: Path, header: pb.FileHeader, sent: Callable[[int], None]
) -> pb.ImportJob:
    """Streams ``path`` after ``header``; ``sent(bytes)`` after each chunk. Returns the new job."""
    channel, stub = target.importer()
    try:
        return await stub.SubmitFile(_messages(header, path, sent), metadata=target.metadata(), timeout=3600)
    finally:
        await channel.close()
