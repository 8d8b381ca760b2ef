"""The ASCII fast path of ``normalise_email`` answers exactly as email-validator does: the same normal
form for every address it accepts, and a refusal (through the full validator) for every other."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from identity_service.domain.emails import _plain_ascii_address, normalise_email
from shared.errors import RollcallError

LOCAL_CHARS = "abcXYZ019.!#$%&'*+/=?^_`{|}~-\"(),:;<>[\\] @"
DOMAINS = [
    "uni.edu", "UNI.EDU", "Mail.Example.COM", "localhost", "example", "x.invalid", "a.test", "1.2.3.4",
    "[127.0.0.1]", "-bad.com", "bad-.com", "a..b.com", "a.b.com.", "xn--bcher-kva.example", "bücher.de",
    "a.b", "sub.domain.co.uk", "under_score.com", "x" * 64 + ".com", "ex ample.com", "",
]  # fmt: skip
EDGE_LOCALS = [
    "a",
    "A.b",
    ".a",
    "a.",
    "a..b",
    "x" * 64,
    "x" * 65,
    '"quoted"',
    "a b",
    "Ann.Lee",
    "o'neil",
    "a+tag",
]


def full_validator(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def addresses() -> list[str]:
    rng = random.Random(20261128)
    found = [f"{local}@{domain}" for local in EDGE_LOCALS for domain in DOMAINS]
    for _ in range(3000):
        local = "".join(rng.choice(LOCAL_CHARS) for _ in range(rng.randint(0, 12)))
        found.append(f"{local}@{rng.choice(DOMAINS)}")
    return found


@pytest.mark.parametrize("chunk", range(10))
def test_fast_path_agrees_with_email_validator(chunk: int) -> None:
    for address in addresses()[chunk::10]:
        fast = _plain_ascii_address(address)
        if fast is not None:
            assert fast == full_validator(address), address
        expected = full_validator(address.strip())
        try:
            got: str | None = normalise_email(address)
        except RollcallError:
            got = None
        if len(address) <= 254:
            assert got == expected, address


def test_fast_path_takes_ordinary_addresses_and_leaves_the_rest() -> None:
    assert _plain_ascii_address("Ann.Lee@Uni.EDU") == "Ann.Lee@uni.edu"
    assert _plain_ascii_address("ann@localhost") is None
    assert _plain_ascii_address("ann@bücher.de") is None
    assert _plain_ascii_address('"ann lee"@uni.edu') is None
