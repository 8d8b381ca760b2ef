"""School settings (product.md "File safety": school settings): what a school's fields may hold, which
fields UpdateSchool may change, and which of them staff of the school may change themselves.

One definition for CreateSchool and UpdateSchool: both check names, domains, the change threshold and
the notify list here, each field named as the request names it (``email_domains[2]`` or
``school.email_domains[2]``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from identity_service.domain.emails import normalise_domain, normalise_email
from identity_service.domain.fields import SCHOOL_NAME_MAX, Violations
from identity_service.domain.identity_keys import email_key
from shared.errors import Reason, RollcallError

MAX_EMAIL_DOMAINS = 20
MAX_NOTIFY_EMAILS = 20
DEFAULT_CHANGE_THRESHOLD_PERCENT = 10
CHANGE_THRESHOLD_RANGE = (0, 100)

NAME = "name"
EMAIL_DOMAINS = "email_domains"
SSO_ENABLED = "sso_enabled"
CHANGE_THRESHOLD_PERCENT = "change_threshold_percent"
NOTIFY_EMAILS = "notify_emails"
MUTED_NOTIFICATIONS = "muted_notifications"

UPDATABLE = (NAME, EMAIL_DOMAINS, SSO_ENABLED, CHANGE_THRESHOLD_PERCENT, NOTIFY_EMAILS, MUTED_NOTIFICATIONS)
"""The update_mask paths UpdateSchool knows (admin may change all of them)."""

STAFF_UPDATABLE = frozenset({CHANGE_THRESHOLD_PERCENT, NOTIFY_EMAILS, MUTED_NOTIFICATIONS})
"""What staff of the school may change: its import settings and which notifications it gets."""


def school_name(raw: str, field: str, found: Violations) -> str:
    return found.text(raw, field, max_len=SCHOOL_NAME_MAX, required=True)


def email_domains(raw: Sequence[str], field: str, found: Violations) -> tuple[str, ...]:
    """Domains in normal form, de-duplicated (order kept), at most MAX_EMAIL_DOMAINS."""
    if len(raw) > MAX_EMAIL_DOMAINS:
        found.add(field, f"has too many entries ({len(raw)}, at most {MAX_EMAIL_DOMAINS})")
        return ()
    domains: list[str] = []
    for index, value in enumerate(raw):
        domain = found.check(functools.partial(normalise_domain, value, f"{field}[{index}]"), "")
        if domain and domain not in domains:
            domains.append(domain)
    return tuple(domains)


def change_threshold_percent(value: int | None, field: str, found: Violations) -> int:
    """0..100; DEFAULT_CHANGE_THRESHOLD_PERCENT when not given (None)."""
    if value is None:
        return DEFAULT_CHANGE_THRESHOLD_PERCENT
    low, high = CHANGE_THRESHOLD_RANGE
    if not low <= value <= high:
        found.add(field, f"must be between {low} and {high} (0 turns the change guard off)")
        return DEFAULT_CHANGE_THRESHOLD_PERCENT
    return value


def notify_emails(raw: Sequence[str], field: str, found: Violations) -> tuple[str, ...]:
    """Addresses in normal form, one per identity key (order kept), at most MAX_NOTIFY_EMAILS."""
    if len(raw) > MAX_NOTIFY_EMAILS:
        found.add(field, f"has too many entries ({len(raw)}, at most {MAX_NOTIFY_EMAILS})")
        return ()
    addresses: list[str] = []
    keys: set[str] = set()
    for index, value in enumerate(raw):
        address = found.check(functools.partial(normalise_email, value, f"{field}[{index}]"), "")
        if address and email_key(address) not in keys:
            keys.add(email_key(address))
            addresses.append(address)
    return tuple(addresses)


def update_paths(paths: Sequence[str], found: Violations, field: str = "update_mask") -> tuple[str, ...]:
    """The known paths of an update mask, once each, in UPDATABLE order; an empty mask or an unknown
    path is a violation naming ``field`` (the unknown path is not echoed: it may be any text)."""
    if not paths:
        found.add(field, f"is required (paths: {', '.join(UPDATABLE)})")
        return ()
    unknown = [p for p in paths if p not in UPDATABLE]
    if unknown:
        found.add(field, f"has {len(unknown)} unknown path(s) (known: {', '.join(UPDATABLE)})")
        return ()
    return tuple(p for p in UPDATABLE if p in paths)


def ensure_staff_may_change(paths: Sequence[str]) -> None:
    """Staff of the school change its import settings only (PERMISSION_DENIED naming the others)."""
    others = [p for p in paths if p not in STAFF_UPDATABLE]
    if others:
        raise RollcallError(
            Reason.PERMISSION_DENIED,
            f"staff may change only {', '.join(sorted(STAFF_UPDATABLE))}; "
            f"an administrator changes {', '.join(others)}",
            metadata={"fields": ",".join(others)},
        )
