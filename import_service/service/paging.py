"""Page sizes and opaque page tokens (api.md: default 50, max 500, tokens opaque).

A token is the URL-safe base64 of a small JSON document naming the listing (``jobs``, ``rows``) and
the keyset cursor. Tokens are opaque, not secret: one that was tampered with is decoded strictly
(base64 alphabet only, the listing's kind and shape, each cursor value checked as the database would
need it: a timestamp with a time zone within range, a job id as the queue contract allows it, a row
number within 64 bits) and anything else is INVALID_ARGUMENT naming ``page_token`` before any query.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from import_service.domain.messages import MAX_JOB_ID_CHARS
from shared.errors import RollcallError, invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
TOKEN_MAX = 2048
INT64_MAX = 2**63 - 1


def page_size(requested: int) -> int:
    if requested < 0:
        raise invalid("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _encode(kind: str, value: Any) -> str:
    raw = json.dumps({"k": kind, "v": value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _refused() -> RollcallError:
    return invalid("page_token", "not a token from a previous response")


def _decode(kind: str, token: str) -> Any:
    if len(token) > TOKEN_MAX or not token.isascii():
        raise _refused()
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise _refused() from None
    if not isinstance(data, dict) or data.get("k") != kind or "v" not in data:
        raise _refused()
    return data["v"]


def job_cursor_token(create_time: datetime, job_id: str) -> str:
    return _encode("jobs", [create_time.isoformat(), job_id])


def job_cursor(token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    value = _decode("jobs", token)
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise _refused()
    moment_text, job_id = value
    try:
        moment = datetime.fromisoformat(moment_text)
        moment.astimezone(UTC)  # OverflowError at the ends of the calendar, as the driver would raise
    except (ValueError, OverflowError):
        raise _refused() from None
    if moment.tzinfo is None or not 1 <= len(job_id) <= MAX_JOB_ID_CHARS or not job_id.isprintable():
        raise _refused()
    return moment, job_id


def row_cursor_token(row_number: int) -> str:
    return _encode("rows", row_number)


def row_cursor(token: str) -> int:
    if not token:
        return 0
    value = _decode("rows", token)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT64_MAX:
        raise _refused()
    return value


def archive_cursor_token(user_id: str) -> str:
    return _encode("archives", user_id)


def archive_cursor(token: str) -> str:
    """The user id after which a ListJobArchives page starts ("" for the first page)."""
    if not token:
        return ""
    value = _decode("archives", token)
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isprintable():
        raise _refused()
    return value
