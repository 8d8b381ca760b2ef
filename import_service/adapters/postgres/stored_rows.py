"""A ``FileRow`` as stored in ``row_results``: ``row_pb`` (bytes of the protobuf ``StudentRow``) since
migration 0002, ``row`` (jsonb) for rows recorded before it.

The jsonb form holds the named fields plus ``extra`` as ``[[name, value], ...]`` pairs.
"""

from __future__ import annotations

import json
from typing import Any

from import_service.adapters.wire import row_from_bytes
from import_service.domain.rows import FileRow


def stored_row(row_number: int, row_pb: bytes | None, row_json: str | dict[str, Any] | None) -> FileRow:
    """The row of a ``row_results`` record, whichever column holds it."""
    if row_pb is not None:
        return row_from_bytes(row_number, row_pb)
    return _row_from_json(row_number, row_json or {})


def extra_names(row_pb: bytes | None, row_json: str | dict[str, Any] | None) -> list[str]:
    """The extra column names of a stored row, in its order."""
    return [name for name, _ in stored_row(1, row_pb, row_json).extra]


def _row_from_json(row_number: int, stored: str | dict[str, Any]) -> FileRow:
    data = json.loads(stored) if isinstance(stored, str) else stored
    return FileRow(
        row_number=row_number,
        username=data.get("username", ""),
        email_address=data.get("email_address", ""),
        first_name=data.get("first_name", ""),
        last_name=data.get("last_name", ""),
        auth_identifier=data.get("auth_identifier", ""),
        extra=tuple((str(k), str(v)) for k, v in data.get("extra", [])),
        status=str(data.get("status", "")),
    )
