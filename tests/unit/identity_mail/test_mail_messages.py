"""The mail students receive: plain text, naming the school, saying what to do."""

from __future__ import annotations

import dataclasses

import pytest

from identity_service.domain.mail import (
    MailKind,
    OutgoingMail,
    change_notice,
    code_message,
    describe_hours,
    header_text,
    one_line,
)


def test_code_message_names_the_school_the_address_the_code_and_the_expiry() -> None:
    subject, body = code_message("Northfield University", "ann@personal.example", "ABCD-EFGH", 24)
    assert "Northfield University" in subject
    assert "code" in subject.lower() and "ABCD" not in subject  # the code never shows in a preview line
    assert "Northfield University" in body
    assert "ann@personal.example" in body
    assert "\n    ABCD-EFGH\n" in body
    assert "expires in 24 hours" in body
    assert "ignore" in body.lower() and "never ask" in body


def test_change_notice_tells_the_old_address_what_happened_and_what_to_do() -> None:
    subject, body = change_notice("Northfield University", "ann@nu.example", "a***@personal.example")
    assert "Northfield University" in subject and "changed" in subject
    assert "from ann@nu.example to a***@personal.example" in body
    assert "If this was not you" in body and "career services office" in body
    assert "personal.example" in body and "ann@personal" not in body


@pytest.mark.parametrize("builder", ["code", "notice"])
def test_messages_are_plain_text_without_html(builder: str) -> None:
    if builder == "code":
        subject, body = code_message("NU", "ann@personal.example", "ABCD-EFGH", 24)
    else:
        subject, body = change_notice("NU", "ann@nu.example", "a***@personal.example")
    assert "<" not in body and ">" not in body and "http" not in body
    assert "\n" not in subject and body.endswith("\n")
    assert all(len(line) <= 100 for line in body.splitlines())


def test_a_hostile_school_name_cannot_add_headers_or_lines() -> None:
    subject, body = code_message("Evil\r\nBcc: all@x.example\x00 U", "a@b.example", "ABCD-EFGH", 24)
    assert "\r" not in subject and "\n" not in subject and "\x00" not in subject
    assert "Evil Bcc: all@x.example U" in subject
    assert "\nBcc:" not in body


def test_a_long_school_name_is_shortened_in_the_subject_only() -> None:
    name = "The " + "Very " * 40 + "Long University"
    subject, body = change_notice(name, "a@b.example", "c***@d.example")
    assert len(subject) < 160 and "..." in subject
    assert name in body


def test_a_blank_school_name_still_reads_well() -> None:
    subject, _ = code_message("  ", "a@b.example", "ABCD-EFGH", 24)
    assert subject.startswith("your school:")


@pytest.mark.parametrize(
    ("hours", "text"),
    [
        (24, "24 hours"),
        (1, "1 hour"),
        (0.5, "30 minutes"),
        (1.5, "1.5 hours"),
        (1 / 60, "1 minute"),
        (48.0, "48 hours"),
    ],
)
def test_describe_hours(hours: float, text: str) -> None:
    assert describe_hours(hours) == text


def test_one_line_collapses_controls_and_spaces() -> None:
    assert one_line(" a\tb\n\nc\u2028d ") == "a b c d"


def test_outgoing_mail_is_frozen_and_kinds_are_stable() -> None:
    mail = OutgoingMail("a@b.example", "s", "b", MailKind.EMAIL_CHANGE_CODE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mail.to = "c@d.example"  # type: ignore[misc]
    assert (mail.school_id, mail.user_id) == (None, None)
    assert MailKind.EMAIL_CHANGE_CODE == "email_change.code"
    assert MailKind.EMAIL_CHANGE_NOTICE == "email_change.notice"


@pytest.mark.parametrize(
    "name",
    [
        "=?utf-8?q?Evil=0D=0AReply-To:_a@evil.example?=",
        "=?UTF-8?B?RXZpbA0KQmNjOiBhbGxAZXZpbC5leGFtcGxl?=",
        "==??utf-8?q?x?=",
    ],
)
def test_an_encoded_word_in_a_name_is_sent_as_typed_never_decoded(name: str) -> None:
    for subject in (code_message(name, "a@b.example", "ABCD-EFGH", 24)[0], change_notice(name, "a", "b")[0]):
        assert "=?" not in subject
        assert subject.startswith(header_text(name))
    assert header_text(name).replace("= ?", "=?") == name
