"""Streaming reader of the rollcall CSV upload format (api.md, "CSV upload format").

``CsvRowReader`` is fed the upload's bytes chunk by chunk and returns ``FileRow``s as records
complete, holding at most one record (plus one chunk) in memory whatever the file's size.

- Header row required; columns ``username`` and ``email_address`` must be present, ``first_name``,
  ``last_name`` and ``auth_identifier`` may be; names are trimmed and case-insensitive, order free;
  any other column goes to ``FileRow.extra`` (``password`` columns are dropped). See ``columns``.
- An optional ``status`` column (issue 9): empty or ``active``, or ``archived`` (the row archives
  that student); passed as ``FileRow.status`` as written, identity judges it (INVALID_ROW).
- UTF-8 with or without BOM, RFC 4180 quoting; bad bytes and NULs read as U+FFFD. See ``records``.
- Row numbers count data records from 1; a blank record is skipped but keeps its number.
- Formula guard round trip: one leading ``'`` is removed from a cell (header included) when the
  characters after it are more quotes and then ``=``, ``+``, ``-``, ``@``, TAB or CR — the exact
  inverse of what ``failed_rows_writer`` adds, so exported failed rows re-upload unchanged. See
  ``formula_cells``.
- Problems with the file as a whole raise ``FileFormatError``; problems within a row are identity's
  to judge (``INVALID_ROW`` naming the field).
"""

from __future__ import annotations

from import_service.domain.rows import FILE_ROW_FIELDS, STATUS_COLUMN
from shared.files.columns import Cells, ColumnLayout, HeaderedRowReader
from shared.files.formula_cells import unguard_formula

__all__ = ["UPLOAD_COLUMNS", "CsvRowReader"]

UPLOAD_COLUMNS = FILE_ROW_FIELDS
"""The upload format's named columns, in the order exports write them."""

REQUIRED_UPLOAD_COLUMNS = ("username", "email_address")


class CsvRowReader(HeaderedRowReader):
    """Incremental reader of an upload: ``feed(chunk) -> list[FileRow]``, then ``finish()``."""

    field_by_column = {column: column for column in UPLOAD_COLUMNS}
    required_columns = REQUIRED_UPLOAD_COLUMNS
    not_extra = (STATUS_COLUMN,)

    def _status(self, layout: ColumnLayout, cells: Cells) -> str:
        return layout.cell(cells, STATUS_COLUMN)

    def _cells(self, cells: Cells) -> Cells:
        for cell in cells:
            if cell.startswith("'"):
                return [unguard_formula(value) for value in cells]
        return cells
