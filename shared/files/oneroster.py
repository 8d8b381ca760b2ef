"""Streaming reader of a OneRoster 1.1 ``users.csv`` file.

Same interface, decoding, quoting, numbering and header rules as ``CsvRowReader`` (both use
``records`` and ``columns``), with OneRoster's columns:

- kept: rows whose ``role`` is ``student`` and whose ``status`` is ``active``, empty or
  ``tobedeleted`` (both trimmed, case-insensitive); a ``tobedeleted`` row goes through with
  ``FileRow.status`` = ``archived`` (identity archives that student, issue 9); other rows (staff,
  unknown statuses ...) are dropped without an outcome, so their row numbers are simply absent;
- mapped: ``username`` → username, ``email`` → email_address, ``givenName`` → first_name,
  ``familyName`` → last_name, ``identifier`` → auth_identifier;
- required columns: ``role``, ``username``, ``email``;
- every other column (``sourcedId``, ``orgSourcedIds``, ``role``, ``status``, ...) goes to extra,
  except ``password``, which is never read.

No formula-guard quote is removed here: failed rows are exported in the rollcall CSV upload format,
so only ``CsvRowReader`` reads them back.
"""

from __future__ import annotations

from shared.files.columns import Cells, ColumnLayout, HeaderedRowReader

__all__ = ["ONEROSTER_FIELD_BY_COLUMN", "OneRosterUsersReader"]

ONEROSTER_FIELD_BY_COLUMN = {
    "username": "username",
    "email": "email_address",
    "givenname": "first_name",
    "familyname": "last_name",
    "identifier": "auth_identifier",
}
"""Lower-cased OneRoster column name → ``FileRow`` field."""

STUDENT_ROLE = "student"
IMPORTED_STATUSES = frozenset({"", "active"})
ARCHIVED_STATUS = "tobedeleted"


class OneRosterUsersReader(HeaderedRowReader):
    """Incremental reader of ``users.csv``: ``feed(chunk) -> list[FileRow]`` (students only), ``finish()``."""

    field_by_column = ONEROSTER_FIELD_BY_COLUMN
    required_columns = ("role", "username", "email")

    def _keeps(self, layout: ColumnLayout, cells: Cells) -> bool:
        role = layout.cell(cells, "role").strip().lower()
        status = layout.cell(cells, "status").strip().lower()
        return role == STUDENT_ROLE and (status in IMPORTED_STATUSES or status == ARCHIVED_STATUS)

    def _status(self, layout: ColumnLayout, cells: Cells) -> str:
        return "archived" if layout.cell(cells, "status").strip().lower() == ARCHIVED_STATUS else ""
