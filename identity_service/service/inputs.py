"""Checks of request values shared by the use cases: identifiers and enum lists.

Each check records a field violation (named as in the protos) instead of raising, so one reply names
every bad field; the use case calls ``Violations.raise_if_any()`` before touching the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import TypeVar

from identity_service.domain.fields import Violations

E = TypeVar("E", bound=StrEnum)


def required_id(value: str, field: str, found: Violations) -> str:
    """A required UUID; '' (with a violation recorded) when missing or malformed."""
    text = (value or "").strip()
    if not text:
        found.add(field, "is required")
        return ""
    return optional_id(text, field, found) or ""


def optional_id(value: str, field: str, found: Violations) -> str | None:
    """None when blank; the canonical UUID text; None with a violation when malformed."""
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > 64:
        found.add(field, "is not an id (UUID)")
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        found.add(field, "is not an id (UUID)")
        return None


def enum_list(values: Sequence[E | None], field: str, found: Violations) -> tuple[E, ...]:
    """A filter list: ``None`` entries stand for unspecified or unknown values and are refused."""
    chosen: list[E] = []
    for index, value in enumerate(values):
        if value is None:
            found.add(f"{field}[{index}]", "is not a known value")
        elif value not in chosen:
            chosen.append(value)
    return tuple(chosen)
