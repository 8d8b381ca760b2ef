"""Structured JSON logs (structlog) with redaction of secrets and email addresses.

One line per RPC and per import batch. Nothing logged may carry a password, token, code or full
email address: ``redact`` runs on every event as the last processor but one.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import structlog

# An address in free text: a local part in any script (every character up to the at sign that
# cannot separate words or addresses), an at sign (or its full-width or small form), a domain. The
# look-behind lets a match start only where a local part can start, so masking stays linear in the
# length of the text (no backtracking from every position of a long word).
_NOT_ADDRESS = r"\s@\uff20\ufe6b<>()\[\],;:\"'`"
_EMAIL = re.compile(rf"(?<![^{_NOT_ADDRESS}])([^{_NOT_ADDRESS}]+)[@\uff20\ufe6b]([^{_NOT_ADDRESS}]*)")
_SECRET_KEYS = ("password", "token", "code", "secret", "authorization")


def mask_email(text: str) -> str:
    """Every address in ``text`` with at most the first character of its local part kept:
    ``ann.lee@uni.edu`` → ``a***@uni.edu``, ``José@uni.edu`` → ``J***@uni.edu``: enough to tell schools
    apart, not people. A "character" is one code point (astral ones whole) with the combining marks
    that follow it; a local part starting with a control, format, private-use or unassigned code
    point, or with a lone combining mark, keeps nothing (``***@uni.edu``)."""
    return _EMAIL.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    return f"{_first_character(match.group(1))}***@{match.group(2)}"


def _first_character(local: str) -> str:
    first = local[0]
    if unicodedata.category(first)[0] in "CMZ":
        return ""
    end = 1
    while end < len(local) and unicodedata.category(local[end])[0] == "M":
        end += 1
    return local[:end]


_secret_keys: dict[str, bool] = {}  # key → whether its value is redacted (keys are few: decided once)


def _is_secret(key: str) -> bool:
    secret = _secret_keys.get(key)
    if secret is None:
        lowered = key.lower()
        secret = any(s in lowered for s in _SECRET_KEYS) and not lowered.endswith(
            ("_count", "_id", "_reason")
        )
        if len(_secret_keys) < 10_000:  # a bound, should keys ever come from data
            _secret_keys[key] = secret
    return secret


def _has_at_sign(text: str) -> bool:
    return "@" in text or "\uff20" in text or "\ufe6b" in text  # the at signs _EMAIL knows


_PLAIN = frozenset({int, float, bool})  # values with nothing to mask, passed on the fast path


def _redact_value(key: str, value: Any) -> Any:
    if _is_secret(key):
        return "[redacted]"
    if value is None or type(value) in _PLAIN:
        return value
    if isinstance(value, str):
        return mask_email(value) if _has_at_sign(value) else value
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Every secret-named key's value replaced, every address masked. The event is structlog's own
    copy for this one line, so it is changed in place (a nested mapping is copied, not changed)."""
    for key, value in event.items():  # _redact_value, inlined for the common keys and values
        secret = _secret_keys.get(key)  # _is_secret's cache, read here: a call saved on every key
        if secret is None:
            secret = _is_secret(key)
        if secret:
            event[key] = "[redacted]"
        elif type(value) is str:
            if _has_at_sign(value):
                event[key] = mask_email(value)
        elif value is not None and type(value) not in _PLAIN:
            redacted = _redact_value(key, value)
            if redacted is not value:
                event[key] = redacted
    return event


_current_span: Callable[[], Any] | None = None
"""``opentelemetry.trace.get_current_span`` once tracing is on (``shared.tracing``), else None."""


def enable_trace_ids() -> None:
    """Lines logged while a span is current carry ``trace_id`` and ``span_id`` (tracing on)."""
    global _current_span
    from opentelemetry.trace import get_current_span

    _current_span = get_current_span


def disable_trace_ids() -> None:
    global _current_span
    _current_span = None


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The current span's ids, W3C-formatted (hex), when tracing is on and a span is current."""
    if _current_span is not None:
        context = _current_span().get_span_context()
        if context.is_valid:
            event["trace_id"] = format(context.trace_id, "032x")
            event["span_id"] = format(context.span_id, "016x")
    return event


def _json_dumps() -> Callable[..., str]:
    """``json.dumps`` for the renderer with its encoder made once: ``json.dumps`` given any option
    (the renderer always passes ``default``) builds a JSONEncoder on every call. Same text."""
    encoder: json.JSONEncoder | None = None

    def dumps(obj: Any, **options: Any) -> str:
        nonlocal encoder
        if encoder is None:
            encoder = json.JSONEncoder(**options)
        return encoder.encode(obj)

    return dumps


def configure_logging(level: str = "INFO", service: str = "rollcall") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(serializer=_json_dumps()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
