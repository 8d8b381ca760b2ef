"""Email-change codes (product rule 8): how they are made, typed, stored and checked.

A code is 8 characters of a 32-letter alphabet without look-alikes (40 bits) drawn from ``secrets``.
Only ``hash_code`` of it is stored: an HMAC-SHA256 under a server key, bound to the change id, so a
stored hash is useless for any other change and cannot be brute-forced offline without the key.
Several keys may be configured for rotation: the first hashes, every one is tried when verifying.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_GROUP = 4  # shown as ABCD-EFGH in mail

_IGNORED_WHEN_TYPED = str.maketrans("", "", " \t\r\n-\u2010\u2011\u2012\u2013\u2014")


@dataclass(frozen=True)
class CodePolicy:
    """How long a code lives, how many wrong tries lock the change, and how often a code may be resent."""

    lifetime: timedelta = timedelta(hours=24)
    max_attempts: int = 5
    resend_per_user_per_hour: int = 5
    resend_per_address_per_hour: int = 5

    def expire_time(self, issued_at: datetime) -> datetime:
        return issued_at + self.lifetime

    def is_expired(self, expire_time: datetime, now: datetime) -> bool:
        return now >= expire_time

    def is_locked(self, failed_attempts: int) -> bool:
        """True once ``max_attempts`` wrong codes have been typed: the change is then locked."""
        return failed_attempts >= self.max_attempts


def new_code() -> str:
    """A fresh code from the operating system's CSPRNG."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(typed: str) -> str:
    """What the person meant: upper case, without spaces and hyphens (``abcd-efgh`` → ``ABCDEFGH``)."""
    return typed.translate(_IGNORED_WHEN_TYPED).upper()


def is_well_formed(code: str) -> bool:
    """True when ``code`` (normalised) has the right length and only alphabet letters."""
    return len(code) == CODE_LENGTH and all(char in CODE_ALPHABET for char in code)


def hash_code(code: str, change_id: str, key: bytes) -> str:
    """Hex HMAC-SHA256 of the normalised code, bound to ``change_id``. The only form ever stored."""
    if not key:
        raise ValueError("an email-change code key must not be empty")
    message = f"rollcall-email-change-code\x00{change_id}\x00{normalise_code(code)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_code(typed: str, change_id: str, stored_hash: str, keys: Sequence[bytes]) -> bool:
    """True when ``typed`` is the code of this change under any of ``keys`` (constant-time compare).

    Every key is tried (no early exit), so the time taken does not tell which key matched.
    """
    if not keys:
        raise ValueError("at least one email-change code key is required")
    matched = False
    for key in keys:
        candidate = hash_code(typed, change_id, key)
        matched |= hmac.compare_digest(candidate.encode(), stored_hash.encode())
    return matched


def format_code_for_mail(code: str) -> str:
    """``ABCDEFGH`` → ``ABCD-EFGH`` (easier to read and type; the hyphen is ignored when typed)."""
    plain = normalise_code(code)
    return "-".join(plain[i : i + CODE_GROUP] for i in range(0, len(plain), CODE_GROUP))
