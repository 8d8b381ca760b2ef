"""Structured JSON logs (structlog) with redaction of secrets and email addresses.

One line per RPC and per import batch. Nothing logged may carry a password, token, code or full
email address: ``redact`` runs on every event as the last processor but one.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+)")
_SECRET_KEYS = ("password", "token", "code", "secret", "authorization")


def mask_email(text: str) -> str:
    """``ann.lee@uni.edu`` → ``a***@uni.edu``: enough to tell schools apart, not people."""
    return _EMAIL.sub(r"\1***@\2", text)


def _redact_value(key: str, value: Any) -> Any:
    lowered = key.lower()
    if any(s in lowered for s in _SECRET_KEYS) and not lowered.endswith(("_count", "_id", "_reason")):
        return "[redacted]"
    if isinstance(value, str):
        return mask_email(value) if "@" in value else value
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: _redact_value(k, v) for k, v in event.items()}


def configure_logging(level: str = "INFO", service: str = "rollcall") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
