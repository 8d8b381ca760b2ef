"""Sends one mail through SMTP with aiosmtplib (``ports.Mailer``); the courier decides everything else.

The mail is composed here from the outbox message: the envelope's recipient is the stored address,
never parsed out of header text; every header must read back as one line. A failure leaves as
``SendFailed`` holding what may be kept of it (the error's type and SMTP code, or its message with
addresses masked, never the message sent and so never a code) and whether retrying can help.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from identity_service.domain.mail import header_text
from identity_service.service.courier import describe_failure
from identity_service.service.ports import OutboxMessage, SendFailed
from shared.logging import mask_email
from shared.settings import Settings

_LINE_BREAK = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def describe_error(exc: BaseException) -> str:
    """What is kept of a failure in ``last_error`` and the logs: the error's type and SMTP code, or its
    message with addresses masked — never the message sent (and so never a code)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({str(e.code) for e in exc.recipients})
        return f"SMTPRecipientsRefused: {', '.join(codes)}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.code} {mask_email(exc.message)}"[:500]
    return describe_failure(exc)


def is_permanent(exc: BaseException) -> bool:
    """True when retrying cannot help: the server refused the recipient with a 5xx code."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(500 <= e.code < 600 for e in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return 500 <= exc.code < 600
    return False


class SmtpMailer:
    """``ports.Mailer`` over the SMTP server of the settings."""

    def __init__(self, settings: Settings, send_timeout: float) -> None:
        self._settings = settings
        self._timeout = send_timeout

    def where(self) -> Mapping[str, object]:
        return {"smtp_host": self._settings.smtp_host, "smtp_port": self._settings.smtp_port}

    async def send(self, message: OutboxMessage) -> None:
        try:
            mail = self._compose(message)
        except (ValueError, TypeError) as exc:  # e.g. a line break in a header: it never will send
            raise SendFailed(describe_error(exc), permanent=True) from exc
        settings = self._settings
        try:
            await aiosmtplib.send(
                mail,
                sender=parseaddr(settings.mail_from)[1] or settings.mail_from,
                recipients=[message.to_address],
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username or None,
                password=settings.smtp_password or None,
                start_tls=settings.smtp_starttls,
                timeout=self._timeout,
            )
        except Exception as exc:  # any failure to hand the message over counts as one try
            raise SendFailed(describe_error(exc), permanent=is_permanent(exc)) from exc

    def _compose(self, message: OutboxMessage) -> EmailMessage:
        sender = self._settings.mail_from
        domain = sender.rpartition("@")[2] or "localhost"
        mail = EmailMessage()
        mail["From"] = sender
        mail["To"] = Address(addr_spec=message.to_address)  # ValueError unless exactly one address
        mail["Subject"] = header_text(message.subject)
        mail["Date"] = format_datetime(message.created_at)
        # Stable across retries, so a receiving server that saw a message can tell a repeat; except for
        # a code mail, whose retry carries a fresh code and must not be dropped as a repeat.
        retry = f".{message.attempts}" if message.email_change_id else ""
        mail["Message-ID"] = f"<outbox-{message.id}.{int(message.created_at.timestamp())}{retry}@{domain}>"
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(message.body)
        _check_headers(mail)
        return mail


def _check_headers(mail: EmailMessage) -> None:
    """ValueError unless every header reads back as one line: nothing in a value was decoded into a
    line break (which the standard library would write out raw, as the start of another header)."""
    for name, value in mail.items():
        if _LINE_BREAK.search(str(value)):
            raise ValueError(f"the {name} header would hold a line break")
