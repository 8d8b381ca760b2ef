"""Failed rows of a job → a CSV file in the upload format, streamed in chunks.

The file re-uploads unchanged through ``CsvRowReader``: UTF-8 with a BOM (so spreadsheet programs
detect the encoding; the reader drops it), CRLF line ends, RFC 4180 quoting, header row
``username,email_address,first_name,last_name,auth_identifier`` followed by the extra columns given
(a column named ``status`` carries the row's status, as the upload's optional ``status`` column).
Every cell, header included, is guarded against formula injection by ``formula_cells.guard_formula``
(a leading ``'``), which the CSV reader removes again, so values survive the round trip exactly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from import_service.domain.rows import STATUS_COLUMN, FileRow
from shared.files.columns import SECRET_COLUMNS, column_key
from shared.files.csv_reader import UPLOAD_COLUMNS
from shared.files.formula_cells import guard_formula

CHUNK_CHARS = 64 * 1024
"""A chunk is yielded once about this many characters are buffered."""
MAX_EXPORT_EXTRA_COLUMNS = 100

_BYTE_ORDER_MARK = "\ufeff"


def failed_rows_csv(rows: Iterable[FileRow], extra_columns: Sequence[str]) -> Iterator[bytes]:
    """The CSV bytes for ``rows``, header first, in chunks of about ``CHUNK_CHARS`` characters.

    ``extra_columns`` names the extra columns to write after the named ones (a row lacking one gets an
    empty cell; extras not named are left out). Raises ``ValueError`` for a name that would clash
    with another column on re-upload.
    """
    _check_extra_columns(extra_columns)
    buffer = io.StringIO()
    buffer.write(_BYTE_ORDER_MARK)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([guard_formula(name) for name in (*UPLOAD_COLUMNS, *extra_columns)])
    for row in rows:
        writer.writerow([guard_formula(value) for value in _row_values(row, extra_columns)])
        if buffer.tell() >= CHUNK_CHARS:
            yield _drain(buffer)
    yield _drain(buffer)


class FailedRowsCsv:
    """``service.ports.FailedRowsFile`` in the rollcall CSV upload format."""

    def exportable(self, extra_columns: Sequence[str]) -> list[str]:
        return exportable_columns(extra_columns)

    def chunks(self, rows: Iterable[FileRow], extra_columns: Sequence[str]) -> Iterator[bytes]:
        return failed_rows_csv(rows, extra_columns)


def exportable_columns(names: Sequence[str]) -> list[str]:
    """Extra columns that re-upload as extra columns (no clash with upload columns, secret columns
    or each other), at most ``MAX_EXPORT_EXTRA_COLUMNS``."""
    taken = {column_key(name) for name in UPLOAD_COLUMNS} | set(SECRET_COLUMNS)
    kept: list[str] = []
    for name in names:
        key = column_key(name)
        if key and key not in taken and len(kept) < MAX_EXPORT_EXTRA_COLUMNS:
            taken.add(key)
            kept.append(name)
    return kept


def _row_values(row: FileRow, extra_columns: Sequence[str]) -> tuple[str, ...]:
    if not extra_columns:
        return row.field_values()
    extras = row.extra_values()
    cells = (row.status if name == STATUS_COLUMN else extras.get(name, "") for name in extra_columns)
    return (*row.field_values(), *cells)


def _drain(buffer: io.StringIO) -> bytes:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text.encode("utf-8")


def _check_extra_columns(extra_columns: Sequence[str]) -> None:
    seen = {column_key(name) for name in UPLOAD_COLUMNS}
    for name in extra_columns:
        key = column_key(name)
        if not key or key in seen:
            raise ValueError(f"extra column {name!r} is blank or clashes with another column")
        seen.add(key)
