"""OneRoster ``users.csv`` rows the import drops without an outcome, counted for the CLI to say so.

The OneRoster reader (``shared.files.oneroster``) keeps only students whose status is active, empty
or ``tobedeleted``; every other non-blank row — a teacher, an administrator, a student whose status
is ``inactive`` — is dropped, so its row number is simply absent from the job. ``publish`` and
``upload`` count those rows here (by role, and students by status) and print the count, so a file
whose rows vanish says why. A CSV upload drops nothing but blank rows, which are not counted.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from import_service.domain.rows import FileFormat, FileFormatError
from shared.files import row_reader_for
from shared.files.columns import Cells, ColumnLayout, HeaderedRowReader
from shared.files.oneroster import STUDENT_ROLE, OneRosterUsersReader

NO_ROLE = "(none)"
NO_STATUS = "(none)"


@dataclass
class SkippedRows:
    """Dropped rows: ``roles`` counts the non-students by role, ``statuses`` the students by status."""

    roles: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def non_students(self) -> int:
        return sum(self.roles.values())

    @property
    def total(self) -> int:
        return self.non_students + sum(self.statuses.values())

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``: ``{"total", "nonStudents", "byRole", "byStatus"}``."""
        return {
            "total": self.total,
            "nonStudents": self.non_students,
            "byRole": dict(self.roles.most_common()),
            "byStatus": dict(self.statuses.most_common()),
        }

    def line(self) -> str | None:
        """``skipped 3 OneRoster rows: 2 not students (teacher 2), 1 student with status inactive``;
        None when nothing was skipped."""
        if not self.total:
            return None
        parts = []
        if self.non_students:
            roles = ", ".join(f"{role} {count}" for role, count in self.roles.most_common())
            parts.append(
                f"{self.non_students} not {_s(self.non_students, 'a student', 'students')} ({roles})"
            )
        for status, count in self.statuses.most_common():
            parts.append(f"{count} {_s(count, 'student', 'students')} with status {status}")
        return f"skipped {self.total} OneRoster {_s(self.total, 'row', 'rows')}: " + ", ".join(parts)


def _s(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


class CountingOneRosterReader(OneRosterUsersReader):
    """The OneRoster reader, counting the rows it drops in ``skipped``."""

    def __init__(self, skipped: SkippedRows | None = None) -> None:
        super().__init__()
        self.skipped = skipped if skipped is not None else SkippedRows()

    def _keeps(self, layout: ColumnLayout, cells: Cells) -> bool:
        kept = super()._keeps(layout, cells)
        if not kept:
            role = layout.cell(cells, "role").strip().lower()
            if role != STUDENT_ROLE:
                self.skipped.roles[role or NO_ROLE] += 1
            else:
                self.skipped.statuses[layout.cell(cells, "status").strip().lower() or NO_STATUS] += 1
        return kept


def counting_reader(file_format: FileFormat, skipped: SkippedRows) -> HeaderedRowReader:
    """The reader for ``file_format``; a OneRoster one counts what it drops into ``skipped``."""
    if file_format is FileFormat.ONEROSTER_USERS:
        return CountingOneRosterReader(skipped)
    return row_reader_for(file_format)


class SkipCounter:
    """Counts a file's dropped rows from its bytes as they are sent (``upload``: the service reads
    the file; this reads the same chunks alongside). A file the reader cannot read stops the
    counting silently: the service refuses it and says why."""

    def __init__(self, file_format: FileFormat, skipped: SkippedRows | None = None) -> None:
        self.skipped = skipped if skipped is not None else SkippedRows()
        self._reader: HeaderedRowReader | None = (
            CountingOneRosterReader(self.skipped) if file_format is FileFormat.ONEROSTER_USERS else None
        )

    def feed(self, chunk: bytes) -> None:
        if self._reader is not None:
            try:
                self._reader.feed(chunk)
            except FileFormatError:
                self._reader = None

    def finish(self) -> SkippedRows:
        if self._reader is not None:
            with contextlib.suppress(FileFormatError):
                self._reader.finish()
            self._reader = None
        return self.skipped
