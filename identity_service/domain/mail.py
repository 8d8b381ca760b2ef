"""The mail rollcall sends to students (product rule 8), as plain text a student understands.

Pure builders: each returns ``(subject, body)``; the service layer wraps them in an ``OutgoingMail``
and puts it in the outbox in the same transaction as the change it tells about, and the courier
(``service/courier.py``, through ``adapters/smtp``) sends it later. Every message names the school,
so a student knows who is writing.
No HTML, no links: a code mail carries the code and says where to type it.

A code mail is written with ``CODE_PLACEHOLDER`` where the code goes: the courier issues the code
at send time and fills it in memory (``fill_code``), so no plain code is ever stored. The
placeholder holds control characters, which ``one_line`` strips from every other text of a mail,
so a school name or address can never contain it.

Header values (subjects, and any name a header will carry) go through ``header_text``: one line,
and no RFC 2047 encoded word, so neither the standard library nor a mail reader can decode a line
break - and with it a second header - out of a school or person name (product.md Additions, "Not
addresses").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

SUBJECT_SCHOOL_MAX = 80
CODE_PLACEHOLDER = "\x1a{code}\x1a"
_ENCODED_WORD_START = "=?"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class MailKind(StrEnum):
    """What a message is about (stored with it; a label on the courier's metrics)."""

    EMAIL_CHANGE_CODE = "email_change.code"
    EMAIL_CHANGE_NOTICE = "email_change.notice"
    # notifications (domain/notifications.py): to a student, and to a school's notify_emails
    STUDENT_WAITING = "student.waiting"
    STUDENT_APPROVED = "student.approved"
    STUDENT_DECLINED = "student.declined"
    PENDING_DIGEST = "staff.pending_digest"
    JOB_HELD = "staff.job_held"
    JOB_FAILED_ROWS = "staff.job_failed_rows"


@dataclass(frozen=True)
class OutgoingMail:
    """One message to put in the outbox. ``to`` is a single address in normal form."""

    to: str
    subject: str
    body: str
    kind: str
    school_id: str | None = None
    user_id: str | None = None
    email_change_id: str | None = None


def code_message(
    school_name: str, new_email: str, code_for_mail: str, expires_hours: float
) -> tuple[str, str]:
    """The mail to the NEW address carrying the confirmation code (``format_code_for_mail`` form), or
    ``CODE_PLACEHOLDER`` for the courier to fill at send time."""
    school = one_line(school_name) or "your school"
    code = code_for_mail if code_for_mail == CODE_PLACEHOLDER else one_line(code_for_mail)
    subject = header_text(f"{_short(school)}: your code to confirm your new email address")
    body = "\n".join(
        [
            "Hello,",
            "",
            f"{school}'s career services office asked to change the email address of your",
            f"careers account to this address: {one_line(new_email)}",
            "",
            "To confirm that this address is yours, type this code where the careers site asks",
            "for it:",
            "",
            f"    {code}",
            "",
            f"The code works once and expires in {describe_hours(expires_hours)}. Your email address",
            "changes only when the code is typed. If a newer code is sent, this one stops working.",
            "",
            "If you were not expecting this message, ignore it: nothing changes unless the code is",
            f"typed. Do not share the code with anyone - {school} staff will never ask you for it.",
            "",
            f"{school} career services",
            "",
        ]
    )
    return subject, body


def change_notice(school_name: str, old_email: str, new_email_masked: str) -> tuple[str, str]:
    """The notice to the OLD address once a change is confirmed: what happened, and what to do if it
    was not you. ``new_email_masked`` is shown as given (pass it through ``mask_email``)."""
    school = one_line(school_name) or "your school"
    subject = header_text(f"{_short(school)}: the email address of your careers account was changed")
    body = "\n".join(
        [
            "Hello,",
            "",
            f"The email address of your careers account at {school} was changed",
            f"from {one_line(old_email)} to {one_line(new_email_masked)}.",
            "",
            "From now on, sign in with the new address. Mail about your account goes there, and",
            "this is the last message about it sent to this address.",
            "",
            "If you made this change, or your career services office made it for you, there is",
            "nothing more to do.",
            "",
            f"If this was not you, contact {school}'s career services office straight away and",
            "tell them your account's email address was changed without your agreement.",
            "",
            f"{school} career services",
            "",
        ]
    )
    return subject, body


def fill_code(body: str, code_for_mail: str) -> str:
    """The code mail ``body`` with its one placeholder replaced by the code; ValueError when the body
    does not hold exactly one placeholder (such a mail must not be sent)."""
    if body.count(CODE_PLACEHOLDER) != 1:
        raise ValueError("a code mail must hold exactly one code placeholder")
    return body.replace(CODE_PLACEHOLDER, code_for_mail)


def describe_hours(hours: float) -> str:
    """``24`` → ``24 hours``, ``1`` → ``1 hour``, ``0.5`` → ``30 minutes``, ``1.5`` → ``1.5 hours``."""
    if hours < 1:
        minutes = max(1, round(hours * 60))
        return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
    shown = f"{hours:g}"
    return "1 hour" if shown == "1" else f"{shown} hours"


def one_line(text: str) -> str:
    """``text`` with control characters and line breaks collapsed to single spaces (no header or
    layout injection from a school name or an address)."""
    return " ".join(_CONTROL.sub(" ", text).split())


def header_text(text: str) -> str:
    """``text`` fit to be a header value: one line (``one_line``) and without RFC 2047 encoded words
    (``=?utf-8?q?...?=``): each ``=?`` becomes ``= ?``, so what is sent is read as exactly these
    characters, never decoded into a line break, a control character or another header."""
    return one_line(text).replace(_ENCODED_WORD_START, "= ?")


def short_school(school: str) -> str:
    """A school name as a subject shows it: at most SUBJECT_SCHOOL_MAX characters."""
    return _short(school)


def _short(school: str) -> str:
    if len(school) <= SUBJECT_SCHOOL_MAX:
        return school
    return school[: SUBJECT_SCHOOL_MAX - 3].rstrip() + "..."
