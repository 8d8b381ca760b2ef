"""Streaming readers of uploaded student files and the failed-rows CSV writer: what a connector
(the ``rollcall`` CLI) and the import service share of the file formats.

``row_reader_for(file_format)`` gives a fresh reader for an upload (``service.ports.RowReader``): feed
it the bytes chunk by chunk, then call ``finish()``; each call returns the ``FileRow``s completed so
far. Whole-file problems raise ``FileFormatError``.
"""

from __future__ import annotations

from import_service.domain.rows import FileFormat
from shared.files.columns import HeaderedRowReader
from shared.files.csv_reader import CsvRowReader
from shared.files.oneroster import OneRosterUsersReader

__all__ = ["row_reader_for"]


def row_reader_for(file_format: FileFormat) -> HeaderedRowReader:
    """A new reader for an upload in ``file_format``."""
    if file_format is FileFormat.ONEROSTER_USERS:
        return OneRosterUsersReader()
    return CsvRowReader()
