"""Email addresses and school email domains: validation and normal form.

An address is stored in its normal form (trimmed, domain lower-cased and in Unicode, local part as
typed) and compared by its key (``identity_keys.email_key``): ``Ann@Uni.EDU `` and ``ann@uni.edu``
are one address (product rule 1). Nothing here checks DNS.

Not addresses (INVALID_EMAIL): RFC 2047 encoded words (``=?utf-8?q?...?=``: a mail client would decode
them into another address), and control, format (zero-width, bidi) or separator characters anywhere.
A local part that mixes scripts which can look alike (TS #39 "highly restrictive") is EMAIL_CONFUSABLE.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from email_validator import EmailNotValidError, validate_email

from identity_service.domain.fields import EMAIL_MAX, unreadable_character_problem
from identity_service.domain.identity_keys import email_key
from identity_service.domain.lookalikes import mixed_script_problem
from shared.errors import FieldViolation, Reason, RollcallError, invalid

_DOMAIN_PROBE_LOCAL_PART = "probe"
# RFC 5322 dot-atom in ASCII: the only local parts email-validator accepts without changing them.
_ASCII_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LOCAL_PART_MAX = 64
_ENCODED_WORD = re.compile(r"=\?.*\?=", re.DOTALL)
# control, format (zero-width, bidi, BOM), surrogate, private use, unassigned, line/paragraph separators
_NOT_IN_ADDRESSES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})


def normalise_email(raw: str | None, field: str = "email") -> str:
    """The normal form of ``raw``; raises ``invalid(field, ..., INVALID_EMAIL)`` when it is not an address."""
    text = (raw or "").strip()
    if not text:
        raise invalid(field, "is required", Reason.INVALID_EMAIL)
    problem = unreadable_character_problem(text) or _not_address_problem(text)
    if problem is not None:
        raise invalid(field, problem, Reason.INVALID_EMAIL)
    if len(text) > EMAIL_MAX:
        raise invalid(
            field, f"is too long ({len(text)} characters, at most {EMAIL_MAX})", Reason.INVALID_EMAIL
        )
    fast = _plain_ascii_address(text)
    if fast is not None:
        return fast
    try:
        normalised = validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise invalid(field, f"is not a valid email address: {error}", Reason.INVALID_EMAIL) from None
    if len(normalised) > EMAIL_MAX:
        raise invalid(field, f"is too long (at most {EMAIL_MAX} characters)", Reason.INVALID_EMAIL)
    mixed = mixed_script_problem(email_key(normalised).rpartition("@")[0])
    if mixed is not None:
        raise RollcallError(Reason.EMAIL_CONFUSABLE, f"{field}: {mixed}", (FieldViolation(field, mixed),))
    return normalised


def _not_address_problem(text: str) -> str | None:
    """Why ``text`` cannot be an address although every character is storable, or None."""
    if "=?" in text and _ENCODED_WORD.search(text):
        return "holds an RFC 2047 encoded word (=?...?=), which is not an address"
    if text.isascii():
        return None  # ASCII control characters are unreadable; email-validator refuses the rest
    for char in text:
        if unicodedata.category(char) in _NOT_IN_ADDRESSES:
            return f"contains an invisible, control or space character (U+{ord(char):04X})"
    return None


def _plain_ascii_address(text: str) -> str | None:
    """The same normal form email-validator gives, for the common case of an ASCII dot-atom address at
    a domain already seen (a student file names thousands of addresses at one or two domains); None
    sends the address through the full validator."""
    local, at, domain = text.rpartition("@")
    if not at or not text.isascii() or len(local) > _LOCAL_PART_MAX or not _ASCII_DOT_ATOM.fullmatch(local):
        return None
    normal_domain = _valid_domain(domain)
    return None if normal_domain is None else f"{local}@{normal_domain}"


@functools.lru_cache(maxsize=4096)
def _valid_domain(domain: str) -> str | None:
    """The normal form of ``domain`` as email-validator writes it, or None when it refuses it."""
    try:
        probe = validate_email(f"{_DOMAIN_PROBE_LOCAL_PART}@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return probe.normalized.rpartition("@")[2]


def local_part(email: str) -> str:
    """The part before the last ``@`` (as stored, case kept)."""
    return email.rpartition("@")[0]


def domain_of(email: str) -> str:
    """The part after the last ``@``, lower-cased."""
    return email.rpartition("@")[2].lower()


def is_at_domains(email: str, domains: Iterable[str]) -> bool:
    """True when the address is at one of ``domains`` or below one (``cs.uni.edu`` is at ``uni.edu``)."""
    domain = _comparable_domain(domain_of(email))
    for candidate in domains:
        wanted = _comparable_domain(candidate)
        if wanted and (domain == wanted or domain.endswith("." + wanted)):
            return True
    return False


def normalise_domain(raw: str | None, field: str = "email_domains") -> str:
    """A school email domain in normal form (lower case, Unicode, no leading ``@``); raises naming ``field``.

    The same validator as for addresses is used, so a domain is accepted exactly when addresses at it are.
    """
    text = (raw or "").strip().removeprefix("@")
    if not text:
        raise invalid(field, "is required")
    problem = unreadable_character_problem(text)
    if problem is not None:
        raise invalid(field, problem)
    try:
        checked = validate_email(f"{_DOMAIN_PROBE_LOCAL_PART}@{text}", check_deliverability=False)
    except EmailNotValidError as error:
        raise invalid(field, f"is not a valid email domain: {error}") from None
    return checked.domain.lower()


def _comparable_domain(domain: str) -> str:
    """Lower-case, without a leading ``@`` or trailing dot, Unicode form of a punycode (``xn--``) name."""
    text = domain.strip().removeprefix("@").rstrip(".").lower()
    if "xn--" in text:
        try:
            text = validate_email(f"{_DOMAIN_PROBE_LOCAL_PART}@{text}", check_deliverability=False).domain
        except EmailNotValidError:
            return text
    return text.lower()
