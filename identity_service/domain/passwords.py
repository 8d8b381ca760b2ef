"""Passwords (product rule 9): only argon2id hashes are stored; checks never raise on a wrong password.

Passwords are NFKC-normalised before hashing and verifying (NIST SP 800-63B), so the same password
typed on keyboards that produce different Unicode forms still matches. They are never trimmed.
"""

from __future__ import annotations

import secrets
import unicodedata

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from identity_service.domain.fields import PASSWORD_MAX, PASSWORD_MIN, unreadable_character_problem
from shared.errors import invalid

DEFAULT_TIME_COST = 3
DEFAULT_MEMORY_COST_KIB = 65536
DEFAULT_PARALLELISM = 4

# argon2id hash (default parameters) of a random secret nobody knows: verifying an unknown email's
# attempt against it spends the same time as a real check, so failures look alike (product rule 9).
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$TAfjFsvyj1MzVR361oM5oA$ch+9sk30r/uqZ7eVf8CAOUV2+UzGGVimVvrXB91S8+8"
)


class PasswordHasher:
    """argon2id hashing with fixed parameters; lower costs are only for tests."""

    def __init__(
        self,
        time_cost: int = DEFAULT_TIME_COST,
        memory_cost_kib: int = DEFAULT_MEMORY_COST_KIB,
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> None:
        self._argon2 = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism, type=argon2.Type.ID
        )
        uses_defaults = (time_cost, memory_cost_kib, parallelism) == (
            DEFAULT_TIME_COST,
            DEFAULT_MEMORY_COST_KIB,
            DEFAULT_PARALLELISM,
        )
        self._dummy_hash = DUMMY_HASH if uses_defaults else self.hash(secrets.token_urlsafe(32))

    def hash(self, password: str) -> str:
        """A new argon2id hash (random salt) of ``password``."""
        return self._argon2.hash(_normal_form(password))

    def verify(self, stored_hash: str, password: str) -> bool:
        """True when ``password`` matches ``stored_hash``; False on mismatch or an unreadable hash."""
        try:
            return self._argon2.verify(stored_hash, _normal_form(password))
        except (VerificationError, InvalidHashError, UnicodeError):
            return False

    def verify_against_dummy(self, password: str) -> bool:
        """Spend the time of a real check when there is no account; always False."""
        self.verify(self._dummy_hash, password)
        return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters (or cannot be read) and should be replaced."""
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True


def validate_password(password: str, field: str = "password") -> str:
    """Refuse a password shorter than PASSWORD_MIN or longer than PASSWORD_MAX characters, or with control
    characters; the message names ``field`` and never contains the password. Returns it unchanged."""
    length = len(_normal_form(password))
    if length < PASSWORD_MIN:
        raise invalid(field, f"is too short (at least {PASSWORD_MIN} characters)")
    if length > PASSWORD_MAX:
        raise invalid(field, f"is too long (at most {PASSWORD_MAX} characters)")
    problem = unreadable_character_problem(password)
    if problem is not None:
        raise invalid(field, problem)
    return password


def _normal_form(password: str) -> str:
    return unicodedata.normalize("NFKC", password)
