"""Streaming readers of uploaded student files and the failed-rows CSV writer.

``row_reader_for(file_format)`` gives a fresh ``RowReader`` for an upload: feed it the bytes chunk by
chunk, then call ``finish()``; each call returns the ``FileRow``s completed so far. Whole-file problems
raise ``FileFormatError``.
"""

from __future__ import annotations

from typing import Protocol

from import_service.domain.rows import FileFormat, FileRow
from shared.files.csv_reader import CsvRowReader
from shared.files.oneroster import OneRosterUsersReader
from shared.files.records import FileFormatError

__all__ = ["FileFormatError", "RowReader", "row_reader_for"]


class RowReader(Protocol):
    """What the upload handler needs from a file reader."""

    @property
    def extra_columns(self) -> tuple[str, ...]: ...

    def feed(self, chunk: bytes) -> list[FileRow]: ...

    def finish(self) -> list[FileRow]: ...


def row_reader_for(file_format: FileFormat) -> RowReader:
    """A new reader for an upload in ``file_format``."""
    if file_format is FileFormat.ONEROSTER_USERS:
        return OneRosterUsersReader()
    return CsvRowReader()
