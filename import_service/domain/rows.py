"""One student row of an import file, as it travels from a file or a connector to identity.

The import service does not judge rows: values pass through unchanged so that identity's
``ApplyStudentRows`` decides ``INVALID_ROW`` (naming the field) in one place. The only thing done
here is bounding transport size: a value longer than ``MAX_TRANSPORT_FIELD_CHARS`` is cut to that
length, which is still far over identity's own limits (~254 characters), so the row still fails as
``INVALID_ROW`` for that field while messages, database rows and exports stay bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_ROWS_PER_MESSAGE = 1000
"""Queue contract: a ``RowChunk`` and an ``ApplyStudentRows`` call carry 1..1000 rows."""

MAX_TRANSPORT_FIELD_CHARS = 4096
"""Hard cap on any one value (known field or extra) carried by the import service."""

FILE_ROW_FIELDS = ("username", "email_address", "first_name", "last_name", "auth_identifier")
STATUS_COLUMN = "status"
"""The upload's optional column for ``FileRow.status`` (CSV; OneRoster's ``status`` is mapped to it)."""
"""The named student fields of a row, in upload-column order."""

ExtraValues = tuple[tuple[str, str], ...]


class FileFormat(StrEnum):
    """Formats ``SubmitFile`` accepts (proto ``FILE_FORMAT_*``; the gRPC adapter converts)."""

    CSV = "csv"
    ONEROSTER_USERS = "oneroster_users"


class FileFormatError(Exception):
    """An uploaded file as a whole cannot be read: a header problem, an empty file, a record over
    the readers' cap (``shared.files``). Problems within a row are identity's to judge."""


@dataclass(frozen=True, slots=True)
class FileRow:
    """A student row of a file or of a connector's message.

    ``row_number`` is the file's data-row number (first data row = 1). ``extra`` holds every other
    column as ``(column name, value)`` pairs in the file's column order: a tuple rather than a dict
    so that the row is immutable and hashable; ``extra_values()`` gives a dict when one is handier.
    """

    row_number: int
    username: str
    email_address: str
    first_name: str = ""
    last_name: str = ""
    auth_identifier: str = ""
    extra: ExtraValues = ()
    status: str = ""  # StudentRow.status: "" / "active", or "archived" (identity judges the value)

    def __post_init__(self) -> None:
        if self.row_number < 1:
            raise ValueError(f"row numbers start at 1, got {self.row_number}")

    def extra_values(self) -> dict[str, str]:
        """The extra columns as a dict (column name → value)."""
        return dict(self.extra)

    def field_values(self) -> tuple[str, str, str, str, str]:
        """The named fields in ``FILE_ROW_FIELDS`` order."""
        return (self.username, self.email_address, self.first_name, self.last_name, self.auth_identifier)


def cap_transport_field(value: str) -> str:
    """``value`` cut to ``MAX_TRANSPORT_FIELD_CHARS`` characters (unchanged when shorter)."""
    return value if len(value) <= MAX_TRANSPORT_FIELD_CHARS else value[:MAX_TRANSPORT_FIELD_CHARS]
