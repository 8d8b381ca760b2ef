"""A file's header row → where each ``FileRow`` field is; data records → ``FileRow``s.

Shared by the CSV and OneRoster readers (``HeaderedRowReader`` is their common feed/finish loop).
Decisions, the same for both formats:

- The first record is the header. Column names are trimmed and compared case-insensitively; a
  name appearing twice is a ``FileFormatError``, as is a missing required column or more than
  ``MAX_COLUMNS`` columns. Columns with a blank name are ignored (with their cells).
- Columns named ``password`` are never read: rollcall carries no passwords in rows or exports.
- Every other column that is not a ``FileRow`` field goes to ``extra`` under its trimmed header
  name, in file order, empty values included, so an export can rebuild the file.
- A data record whose cells are all empty or whitespace is skipped without an outcome but keeps its
  row number, so numbers match the spreadsheet. Missing trailing cells read as empty; cells beyond
  the header's columns are ignored.
- Values are passed through unchanged (no trimming; ``records`` cuts each to
  ``MAX_TRANSPORT_FIELD_CHARS``); identity's validation decides ``INVALID_ROW``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from import_service.domain.rows import FILE_ROW_FIELDS, FileFormatError, FileRow
from shared.files.records import Record, RecordReader

MAX_COLUMNS = 100
MAX_COLUMN_NAME_CHARS = 128
SECRET_COLUMNS = frozenset({"password"})

Cells = Sequence[str]
CellsGetter = Callable[[Cells], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ColumnLayout:
    """Where a file's records keep each ``FileRow`` field and each extra column.

    ``field_indexes`` follows ``FILE_ROW_FIELDS``; a field without a column points one past the
    header's last column, at the empty cell ``build_row`` pads with (``min_cells`` long).
    """

    field_indexes: tuple[int, ...]
    extra_columns: tuple[str, ...]
    extra_indexes: tuple[int, ...]
    index_by_key: Mapping[str, int]
    min_cells: int = field(init=False)
    fields_of: CellsGetter = field(init=False, repr=False, compare=False)
    extras_of: CellsGetter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_cells", max((*self.field_indexes, *self.extra_indexes)) + 1)
        object.__setattr__(self, "fields_of", _tuple_getter(self.field_indexes))
        object.__setattr__(self, "extras_of", _tuple_getter(self.extra_indexes))

    def cell(self, cells: Cells, column_key: str) -> str:
        """The value of the column whose key (see ``column_key``) is given; "" when absent."""
        index = self.index_by_key.get(column_key)
        return cells[index] if index is not None and index < len(cells) else ""


def _tuple_getter(indexes: tuple[int, ...]) -> CellsGetter:
    """``itemgetter`` that returns a tuple whatever the number of indexes."""
    if len(indexes) >= 2:
        getter: CellsGetter = itemgetter(*indexes)
        return getter
    if len(indexes) == 1:
        only = indexes[0]
        return lambda cells: (cells[only],)
    return lambda cells: ()


def column_key(name: str) -> str:
    """How column names are compared: trimmed, lower-cased."""
    return name.strip().lower()


def read_header(
    cells: Cells, field_by_column: Mapping[str, str], required: Sequence[str], not_extra: Sequence[str] = ()
) -> ColumnLayout:
    """The layout named by a header row; ``field_by_column`` maps lower-cased names to fields."""
    if not any(cell.strip() for cell in cells):
        raise FileFormatError("the header row is empty; the first line must name the columns")
    if len(cells) > MAX_COLUMNS:
        raise FileFormatError(f"the header row has {len(cells)} columns; at most {MAX_COLUMNS} are accepted")
    field_index_by_name: dict[str, int] = {}
    extra_columns: list[str] = []
    extra_indexes: list[int] = []
    index_by_key: dict[str, int] = {}
    for index, raw_name in enumerate(cells):
        name, key = raw_name.strip(), column_key(raw_name)
        if not key:
            continue
        if len(name) > MAX_COLUMN_NAME_CHARS:
            raise FileFormatError(
                f"column {index + 1} of the header row has a name longer than "
                f"{MAX_COLUMN_NAME_CHARS} characters"
            )
        if key in index_by_key:
            raise FileFormatError(f"the header row names the column {name!r} more than once")
        index_by_key[key] = index
        if key in field_by_column:
            field_index_by_name[field_by_column[key]] = index
        elif key not in SECRET_COLUMNS and key not in not_extra:
            extra_columns.append(name)
            extra_indexes.append(index)
    missing = [column for column in required if column not in index_by_key]
    if missing:
        names = ", ".join(repr(column) for column in missing)
        raise FileFormatError(f"the header row has no {names} column{'s' if len(missing) > 1 else ''}")
    absent = len(cells)
    field_indexes = tuple(field_index_by_name.get(name, absent) for name in FILE_ROW_FIELDS)
    return ColumnLayout(field_indexes, tuple(extra_columns), tuple(extra_indexes), index_by_key)


def is_blank(cells: Cells) -> bool:
    """True when every cell is empty or whitespace (a blank spreadsheet row)."""
    if cells and cells[0] and not cells[0].isspace():
        return False  # the common case, answered without scanning the row
    return not any(map(str.strip, cells))


def build_row(layout: ColumnLayout, row_number: int, cells: Cells, status: str = "") -> FileRow:
    """The ``FileRow`` for a data record's cells; missing trailing cells read as empty."""
    if len(cells) < layout.min_cells:
        cells = [*cells, *[""] * (layout.min_cells - len(cells))]
    username, email_address, first_name, last_name, auth_identifier = layout.fields_of(cells)
    extra = (
        tuple(zip(layout.extra_columns, layout.extras_of(cells), strict=True)) if layout.extra_columns else ()
    )
    return FileRow(row_number, username, email_address, first_name, last_name, auth_identifier, extra, status)


class HeaderedRowReader:
    """The feed/finish loop of a headered file format; subclasses say how columns map to fields."""

    field_by_column: Mapping[str, str] = {}
    required_columns: tuple[str, ...] = ()
    not_extra: tuple[str, ...] = ()  # columns read by ``_status`` rather than kept in extra

    def __init__(self) -> None:
        self._records = RecordReader()
        self._layout: ColumnLayout | None = None

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """The file's extra column names, once the header has been read (else empty)."""
        return () if self._layout is None else self._layout.extra_columns

    def feed(self, chunk: bytes) -> list[FileRow]:
        """The rows completed by ``chunk`` of the file's bytes."""
        return self._rows(self._records.feed(chunk))

    def finish(self) -> list[FileRow]:
        """The rows left at end of file; raises ``FileFormatError`` when there was no header."""
        rows = self._rows(self._records.finish())
        if self._layout is None:
            raise FileFormatError("the file is empty; the first line must name the columns")
        return rows

    def _rows(self, records: list[Record]) -> list[FileRow]:
        rows: list[FileRow] = []
        layout = self._layout
        for number, raw_cells in records:
            cells = self._cells(raw_cells)
            if layout is None:
                layout = self._layout = read_header(
                    cells, self.field_by_column, self.required_columns, self.not_extra
                )
            elif not is_blank(cells) and self._keeps(layout, cells):
                rows.append(build_row(layout, number, cells, self._status(layout, cells)))
        return rows

    def _cells(self, cells: Cells) -> Cells:
        """Hook: the format's reading of raw cells (header included); unchanged by default."""
        return cells

    def _keeps(self, layout: ColumnLayout, cells: Cells) -> bool:
        """Hook: whether a non-blank data record is a student row of this import."""
        return True

    def _status(self, layout: ColumnLayout, cells: Cells) -> str:
        """Hook: the row's ``status`` (StudentRow.status); none by default."""
        return ""
