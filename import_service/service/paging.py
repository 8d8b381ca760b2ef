"""Page sizes and opaque page tokens (api.md: default 50, max 500, tokens opaque)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from shared.errors import invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    if requested < 0:
        raise invalid("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _encode(kind: str, value: Any) -> str:
    raw = json.dumps({"k": kind, "v": value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(kind: str, token: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data["k"] != kind:
            raise ValueError(kind)
        return data["v"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise invalid("page_token", "not a token from a previous response") from None


def job_cursor_token(create_time: datetime, job_id: str) -> str:
    return _encode("jobs", [create_time.isoformat(), job_id])


def job_cursor(token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    value = _decode("jobs", token)
    try:
        return datetime.fromisoformat(value[0]), str(value[1])
    except (ValueError, IndexError, TypeError):
        raise invalid("page_token", "not a token from a previous response") from None


def row_cursor_token(row_number: int) -> str:
    return _encode("rows", row_number)


def row_cursor(token: str) -> int:
    if not token:
        return 0
    value = _decode("rows", token)
    if not isinstance(value, int):
        raise invalid("page_token", "not a token from a previous response")
    return value
