"""Code mails: the courier issues the code of an email change at the moment it sends the mail.

The outbox holds the code mail with ``mail.CODE_PLACEHOLDER`` instead of a code. Right before the
send, one short unit of work checks that the change is still PENDING and not expired and stores the
keyed hash of a fresh code on it (or abandons the mail when the change closed meanwhile); the code
itself lives only in this process's memory and in the mail handed to the mailer. A retry after a
failed send issues a fresh code (the old one never arrived); the change's try count is not reset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from identity_service.domain.codes import format_code_for_mail, hash_code, new_code
from identity_service.domain.mail import CODE_PLACEHOLDER, MailKind, fill_code
from identity_service.service.ports import OutboxMessage, UnitOfWorkFactory

CLOSED = "discarded: the email change is no longer pending"


class CodeIssuer:
    """Fills code mails with fresh codes; every other mail passes through unchanged."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or not keys[0]:
            raise ValueError("a code key is required to issue codes")
        self._key = keys[0]

    async def ready(self, new_uow: UnitOfWorkFactory, message: OutboxMessage) -> OutboxMessage | None:
        """The message as it is to be sent, or None when it must not be sent (it is then ABANDONED).
        ValueError for a code mail that cannot carry a code (no change named, no placeholder)."""
        if message.kind != MailKind.EMAIL_CHANGE_CODE:
            return message
        change_id = message.email_change_id
        if change_id is None or message.body.count(CODE_PLACEHOLDER) != 1:
            raise ValueError("a code mail must name its email change and hold one code placeholder")
        code = new_code()
        async with new_uow() as uow:
            issued = await uow.email_changes.issue_code(change_id, hash_code(code, change_id, self._key))
            if not issued:
                await uow.outbox.abandon(message.id, CLOSED)
        if not issued:
            return None
        return dataclasses.replace(message, body=fill_code(message.body, format_code_for_mail(code)))
