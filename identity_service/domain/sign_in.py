"""Sign-in help (product rule 4): what to tell someone who typed an email on the sign-in page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from identity_service.domain.emails import is_at_domains, normalise_email


class SignInOutcome(StrEnum):
    ACCOUNT_FOUND = "ACCOUNT_FOUND"
    TRY_SCHOOL_EMAIL = "TRY_SCHOOL_EMAIL"
    CREATE_ACCOUNT = "CREATE_ACCOUNT"


@dataclass(frozen=True)
class SignInResolution:
    """The answer; ``domains`` is only filled for TRY_SCHOOL_EMAIL. ``sso_enabled`` is the named school's."""

    outcome: SignInOutcome
    domains: tuple[str, ...]
    sso_enabled: bool


def resolve_sign_in(
    email: str, account_exists: bool, school_domains: Sequence[str] | None, sso_enabled: bool
) -> SignInResolution:
    """Decide the sign-in answer.

    ``school_domains`` is None when no school was named. An unknown address that is not at one of the
    named school's domains gets "try your school email" with the domains; any other unknown address
    gets "create an account" (also when the school has no domains to suggest). ``sso_enabled`` is passed
    through so the client can prefer SSO. Raises INVALID_EMAIL (field ``email``) for a malformed address.
    """
    normalised = normalise_email(email)
    if account_exists:
        return SignInResolution(SignInOutcome.ACCOUNT_FOUND, (), sso_enabled)
    domains = tuple(school_domains or ())
    if domains and not is_at_domains(normalised, domains):
        return SignInResolution(SignInOutcome.TRY_SCHOOL_EMAIL, domains, sso_enabled)
    return SignInResolution(SignInOutcome.CREATE_ACCOUNT, (), sso_enabled)
