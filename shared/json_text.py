"""JSON text for what is written once per row (audit details, field changes): each encoder is made
once. ``json.dumps`` with any argument of its own builds a new ``JSONEncoder`` on every call, about
two thirds of the cost of encoding a created student's audit details (issue 12,
docs/performance.md); the text is the same."""

from __future__ import annotations

import json

compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``."""

with_str_fallback = json.JSONEncoder(default=str).encode
"""``json.dumps(value, default=str)``: values JSON has no type for (datetimes, ids) as their str()."""
