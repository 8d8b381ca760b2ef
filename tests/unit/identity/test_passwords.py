"""Passwords (product rule 9): argon2id hashes, checks that never raise, length rules."""

from __future__ import annotations

import pytest

from identity_service.domain.passwords import (
    DUMMY_HASH,
    PasswordHasher,
    validate_password,
)
from shared.errors import Reason, RollcallError

# Cheap parameters keep the tests fast; production uses the defaults.
FAST = PasswordHasher(time_cost=1, memory_cost_kib=8, parallelism=1)
PASSWORD = "correct horse battery"


def test_hash_is_argon2id_with_a_random_salt() -> None:
    first, second = FAST.hash(PASSWORD), FAST.hash(PASSWORD)
    assert first.startswith("$argon2id$")
    assert first != second
    assert PASSWORD not in first


def test_verify_accepts_the_password_and_refuses_others_without_raising() -> None:
    stored = FAST.hash(PASSWORD)
    assert FAST.verify(stored, PASSWORD) is True
    assert FAST.verify(stored, "correct horse battery!") is False
    assert FAST.verify(stored, "") is False
    assert FAST.verify("not a hash", PASSWORD) is False
    assert FAST.verify("", PASSWORD) is False
    assert FAST.verify(stored, "bad\udc80surrogate") is False


def test_unicode_forms_of_one_password_match() -> None:
    stored = FAST.hash("caf\u00e9 au lait!")  # é precomposed
    assert FAST.verify(stored, "cafe\u0301 au lait!")  # e + combining accent


def test_passwords_are_not_trimmed() -> None:
    stored = FAST.hash(" padded password ")
    assert not FAST.verify(stored, "padded password")


def test_needs_rehash_when_parameters_change() -> None:
    stored = FAST.hash(PASSWORD)
    assert FAST.needs_rehash(stored) is False
    assert PasswordHasher(time_cost=2, memory_cost_kib=8, parallelism=1).needs_rehash(stored) is True
    assert FAST.needs_rehash("garbage") is True


def test_dummy_hash_is_a_default_parameter_argon2id_hash() -> None:
    default = PasswordHasher()
    assert DUMMY_HASH.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert default.needs_rehash(DUMMY_HASH) is False
    assert default.verify_against_dummy(PASSWORD) is False


def test_verify_against_dummy_is_always_false() -> None:
    assert FAST.verify_against_dummy(PASSWORD) is False
    assert FAST.verify_against_dummy("") is False


@pytest.mark.parametrize(
    "password", ["a" * 10, "a" * 256, "ten chars!", "密码密码密码密码密码", "  spaces  "]
)
def test_acceptable_passwords_are_returned_unchanged(password: str) -> None:
    assert validate_password(password) == password


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("", "too short (at least 10"),
        ("a" * 9, "too short (at least 10"),
        ("a" * 257, "too long (at most 256"),
        ("abcdefghij\x00", "U+0000"),
        ("abcdefghij\ufffd", "U+FFFD"),
    ],
)
def test_unacceptable_passwords_are_refused_without_echoing_them(password: str, words: str) -> None:
    with pytest.raises(RollcallError) as caught:
        validate_password(password, "new_password")
    assert caught.value.reason is Reason.INVALID_ARGUMENT
    assert caught.value.message.startswith("new_password: ")
    assert words in caught.value.message
    if password:
        assert password not in caught.value.message
