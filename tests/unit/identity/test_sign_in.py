"""Sign-in help (product rule 4)."""

from __future__ import annotations

import pytest

from identity_service.domain.sign_in import SignInOutcome, SignInResolution, resolve_sign_in
from shared.errors import Reason, RollcallError

UNI = ["uni.edu", "alumni.uni.edu"]


def test_existing_account_is_found_whatever_the_domain() -> None:
    assert resolve_sign_in("ann@gmail.com", True, UNI, True) == SignInResolution(
        SignInOutcome.ACCOUNT_FOUND, (), True
    )


def test_unknown_personal_address_at_a_named_school_is_told_to_try_the_school_email() -> None:
    result = resolve_sign_in("ann@gmail.com", False, UNI, False)
    assert result == SignInResolution(SignInOutcome.TRY_SCHOOL_EMAIL, ("uni.edu", "alumni.uni.edu"), False)


def test_sso_flag_is_passed_through_so_clients_can_prefer_sso() -> None:
    assert resolve_sign_in("ann@gmail.com", False, UNI, True).sso_enabled is True


@pytest.mark.parametrize("email", ["ann@uni.edu", "ANN@UNI.EDU", "ann@cs.uni.edu", "ann@alumni.uni.edu"])
def test_unknown_school_address_is_told_to_create_an_account(email: str) -> None:
    result = resolve_sign_in(email, False, UNI, True)
    assert result == SignInResolution(SignInOutcome.CREATE_ACCOUNT, (), True)


@pytest.mark.parametrize("domains", [None, []])
def test_no_school_or_a_school_without_domains_means_create_an_account(domains: list[str] | None) -> None:
    assert resolve_sign_in("ann@gmail.com", False, domains, False).outcome is SignInOutcome.CREATE_ACCOUNT


def test_malformed_email_is_refused() -> None:
    with pytest.raises(RollcallError) as caught:
        resolve_sign_in("ann@", False, UNI, False)
    assert caught.value.reason is Reason.INVALID_EMAIL
    assert caught.value.violations[0].field == "email"
