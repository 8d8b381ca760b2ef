"""The one definition of when two emails, or two usernames, name the same identity (product.md Additions).

A *key* is what the unique indexes are built on and every lookup, batch match and rate-limit counter
compares. It is computed here and only here; PostgreSQL's ``lower()`` (or any other second normal
form) never decides whether two identities are one.

- ``email_key``: trimmed, NFKC; the domain as its IDNA A-label (punycode), lower case, no trailing
  dot; the local part case-folded with full Unicode case folding, then decomposed (NFKD) with every
  combining mark removed. ``ß`` = ``ss``, ``İNAN`` = ``inan``, ``José`` = ``jose``, a fullwidth
  ``a`` (U+FF41) = ``a``, the ligature U+FB03 = ``ffi``: conservative on purpose, two addresses a
  person could take for one are one.
- ``username_key``: the same folding of the whole (trimmed, NFKC) username.
- ``auth_identifier_key``: the username folding of an auth identifier (the SSO subject), None when
  blank.

``EmailIdentity`` adds what the lookalike rule needs (``identity_service.domain.lookalikes``): the
confusable skeleton of the key and whether the key is plain ASCII.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

import idna

from identity_service.domain.lookalikes import skeleton


def fold(text: str) -> str:
    """Full case folding, then NFKD without combining marks (the comparison form of one name)."""
    if text.isascii():
        return text.lower()  # ASCII case folding is lower-casing; nothing to decompose
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.category(char).startswith("M"))


@functools.lru_cache(maxsize=4096)
def domain_key(domain: str) -> str:
    """The IDNA A-label of ``domain`` in lower case without a trailing dot (``Bücher.DE.`` →
    ``xn--bcher-kva.de``). A domain IDNA refuses (never one that passed address validation) keeps its
    case-folded text, so the function is total."""
    text = unicodedata.normalize("NFKC", domain.strip()).rstrip(".")
    if text.isascii():
        return text.lower()
    try:
        return idna.encode(text, uts46=True).decode("ascii").lower()
    except idna.IDNAError:
        return fold(text)


def email_key(address: str) -> str:
    """The comparison key of an address (see the module docstring)."""
    text = address.strip()
    if text.isascii():  # the common case, same result as below
        local, at, domain = text.rpartition("@")
        return f"{local.lower()}{at}{domain_key(domain)}" if at else text.lower()
    text = unicodedata.normalize("NFKC", text)
    local, at, domain = text.rpartition("@")
    if not at:
        return fold(text)
    return f"{fold(local)}@{domain_key(domain)}"


def username_key(username: str) -> str:
    """The comparison key of a username (unique per school)."""
    text = username.strip()
    if text.isascii():
        return text.lower()
    return fold(unicodedata.normalize("NFKC", text))


def auth_identifier_key(auth_identifier: str) -> str | None:
    """The comparison key of an auth identifier (SSO subject; unique per school), folded like a
    username; None for a blank one (blank identifiers are never unique and never match a subject)."""
    key = username_key(auth_identifier)
    return key or None


@dataclass(frozen=True, slots=True)
class EmailIdentity:
    """What the users table stores beside an address: its key, the key's confusable skeleton, and
    whether the key is plain ASCII (an all-ASCII address compares by its key alone)."""

    key: str
    skeleton: str
    plain: bool

    @classmethod
    def of(cls, address: str) -> EmailIdentity:
        key = email_key(address)
        return cls(key, skeleton(key), key.isascii())

    def confusable_with(self, other: EmailIdentity) -> bool:
        """True when the two are different addresses a reader could take for one (same skeleton,
        not both plain ASCII)."""
        return self.key != other.key and self.skeleton == other.skeleton and not (self.plain and other.plain)
