"""A ``FileRow`` as stored in ``row_results.row`` (jsonb): named fields plus ordered extra pairs.

Extra columns are kept as ``[[name, value], ...]`` because jsonb objects do not keep key order and
the export writes extra columns in the file's order.
"""

from __future__ import annotations

import json
from typing import Any

from import_service.domain.rows import FileRow


def row_to_json(row: FileRow) -> str:
    return json.dumps(
        {
            "username": row.username,
            "email_address": row.email_address,
            "first_name": row.first_name,
            "last_name": row.last_name,
            "auth_identifier": row.auth_identifier,
            "extra": [list(pair) for pair in row.extra],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def row_from_json(row_number: int, stored: str | dict[str, Any]) -> FileRow:
    data = json.loads(stored) if isinstance(stored, str) else stored
    return FileRow(
        row_number=row_number,
        username=data.get("username", ""),
        email_address=data.get("email_address", ""),
        first_name=data.get("first_name", ""),
        last_name=data.get("last_name", ""),
        auth_identifier=data.get("auth_identifier", ""),
        extra=tuple((str(k), str(v)) for k, v in data.get("extra", [])),
    )
