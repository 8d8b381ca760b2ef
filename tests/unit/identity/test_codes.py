"""Email-change codes (product rule 8)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from identity_service.domain.codes import (
    CODE_ALPHABET,
    CODE_LENGTH,
    CodePolicy,
    format_code_for_mail,
    hash_code,
    is_well_formed,
    new_code,
    normalise_code,
    verify_code,
)

KEY = b"k" * 32
OLD_KEY = b"o" * 32


def test_alphabet_has_no_look_alikes_and_codes_carry_at_least_40_bits() -> None:
    assert len(set(CODE_ALPHABET)) == len(CODE_ALPHABET)
    assert not set("01IO") & set(CODE_ALPHABET)
    assert CODE_LENGTH >= 8
    assert CODE_LENGTH * math.log2(len(CODE_ALPHABET)) >= 40


def test_new_codes_use_the_alphabet_and_differ() -> None:
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET)
        assert is_well_formed(code)
    assert set("".join(codes)) == set(CODE_ALPHABET)  # 1600 draws cover all 32 letters


@pytest.mark.parametrize(
    ("typed", "normal"),
    [("abcd-efgh", "ABCDEFGH"), (" ABCD EFGH ", "ABCDEFGH"), ("ab-cd\u2013ef gh\n", "ABCDEFGH"), ("", "")],
)
def test_typed_codes_are_normalised(typed: str, normal: str) -> None:
    assert normalise_code(typed) == normal


@pytest.mark.parametrize("code", ["ABCDEFG", "ABCDEFGHJ", "ABCDEFG0", "ABCDEFGI", "abcdefgh"])
def test_malformed_codes(code: str) -> None:
    assert not is_well_formed(code)


def test_format_for_mail() -> None:
    assert format_code_for_mail("ABCDEFGH") == "ABCD-EFGH"
    assert normalise_code(format_code_for_mail("ABCDEFGH")) == "ABCDEFGH"


def test_hash_is_hex_hmac_and_never_contains_the_code() -> None:
    digest = hash_code("ABCDEFGH", "change-1", KEY)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert "ABCDEFGH" not in digest
    assert hash_code("abcd-efgh", "change-1", KEY) == digest  # hashed in normal form


def test_hash_is_bound_to_the_change_and_the_key() -> None:
    digest = hash_code("ABCDEFGH", "change-1", KEY)
    assert hash_code("ABCDEFGH", "change-2", KEY) != digest
    assert hash_code("ABCDEFGH", "change-1", OLD_KEY) != digest
    assert hash_code("ABCDEFGJ", "change-1", KEY) != digest


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        hash_code("ABCDEFGH", "change-1", b"")


def test_verify_accepts_the_code_as_typed() -> None:
    stored = hash_code("ABCDEFGH", "change-1", KEY)
    assert verify_code("abcd-efgh", "change-1", stored, [KEY])
    assert verify_code(" ABCD EFGH ", "change-1", stored, [KEY])


def test_verify_refuses_wrong_code_change_or_key() -> None:
    stored = hash_code("ABCDEFGH", "change-1", KEY)
    assert not verify_code("ABCDEFGJ", "change-1", stored, [KEY])
    assert not verify_code("ABCDEFGH", "change-2", stored, [KEY])
    assert not verify_code("ABCDEFGH", "change-1", stored, [OLD_KEY])
    assert not verify_code("", "change-1", stored, [KEY])
    assert not verify_code("ABCDEFGH", "change-1", "not-a-hash", [KEY])


def test_verify_tries_every_key_for_rotation() -> None:
    stored_with_old_key = hash_code("ABCDEFGH", "change-1", OLD_KEY)
    assert verify_code("ABCDEFGH", "change-1", stored_with_old_key, [KEY, OLD_KEY])


def test_verify_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        verify_code("ABCDEFGH", "change-1", "x", [])


def test_policy_defaults_and_helpers() -> None:
    policy = CodePolicy()
    assert policy.lifetime == timedelta(hours=24)
    assert (policy.max_attempts, policy.resend_per_user_per_hour, policy.resend_per_address_per_hour) == (
        5,
        5,
        5,
    )
    issued = datetime(2025, 1, 1, 12, tzinfo=UTC)
    expires = policy.expire_time(issued)
    assert expires == datetime(2025, 1, 2, 12, tzinfo=UTC)
    assert not policy.is_expired(expires, expires - timedelta(seconds=1))
    assert policy.is_expired(expires, expires)
    assert not policy.is_locked(4)
    assert policy.is_locked(5)
    assert CodePolicy(lifetime=timedelta(hours=1)).expire_time(issued) == issued + timedelta(hours=1)
