"""Text PostgreSQL refuses (NUL, lone surrogates) made storable, for values the service records as
they came (dead-letter metadata, identity's row messages): a record must never fail on them."""

from __future__ import annotations


def storable(text: str) -> str:
    """``text`` with what PostgreSQL refuses in a text value (NUL, lone surrogates) replaced."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text
