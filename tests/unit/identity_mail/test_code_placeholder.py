"""Code mails are written with a placeholder; only the courier, in memory, puts the code in."""

from __future__ import annotations

import pytest

from identity_service.domain.codes import format_code_for_mail, new_code
from identity_service.domain.mail import CODE_PLACEHOLDER, code_message, fill_code, one_line
from identity_service.service.email_change import CodeSettings


def test_a_code_mail_keeps_its_placeholder_until_filled() -> None:
    subject, body = code_message("Uni of Test", "ann@gmail.com", CODE_PLACEHOLDER, 24)
    assert body.count(CODE_PLACEHOLDER) == 1 and "Uni of Test" in subject
    code = format_code_for_mail(new_code())
    filled = fill_code(body, code)
    assert f"    {code}\n" in filled and CODE_PLACEHOLDER not in filled and "\x1a" not in filled


def test_a_school_name_or_address_can_never_hold_the_placeholder() -> None:
    _, body = code_message(
        f"Evil {CODE_PLACEHOLDER} U", f"x{CODE_PLACEHOLDER}@gmail.com", CODE_PLACEHOLDER, 1
    )
    assert body.count(CODE_PLACEHOLDER) == 1
    assert CODE_PLACEHOLDER not in one_line(CODE_PLACEHOLDER)


def test_a_body_without_exactly_one_placeholder_is_refused() -> None:
    with pytest.raises(ValueError):
        fill_code("no placeholder", "ABCD-EFGH")
    with pytest.raises(ValueError):
        fill_code(CODE_PLACEHOLDER * 2, "ABCD-EFGH")


def test_a_code_mail_with_a_real_code_is_still_plain_text() -> None:
    _, body = code_message("Uni", "ann@gmail.com", "ABCD-EFGH", 0.5)
    assert "    ABCD-EFGH\n" in body and "30 minutes" in body


def test_code_settings_need_a_key_and_take_the_lifetime() -> None:
    with pytest.raises(ValueError):
        CodeSettings(keys=())
    with pytest.raises(ValueError):
        CodeSettings(keys=(b"",))
    settings = CodeSettings.from_hours(2.5, [b"k1", b"k0"])
    assert settings.policy.lifetime.total_seconds() == 2.5 * 3600 and settings.keys == (b"k1", b"k0")
