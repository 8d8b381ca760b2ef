"""Email changes (product rule 8): staff open one, the student confirms it with the mailed code.

Opening a change stores it WITHOUT a code and queues a code mail holding a placeholder; the courier
issues the code when it sends the mail (``service/code_mail.py``). So no plain code is ever
written to the database or a log, and a code that was never delivered was never valid.

Decisions (docs/email-changes.md): an address held by any user, the student included, is
EMAIL_TAKEN; a new request replaces (CANCELLED) the pending one and drops its unsent code mail;
requests are limited per student and per new address within an hour, counted only when they succeed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_service.domain.codes import CodePolicy
from identity_service.domain.email_changes import (
    EmailChange,
    EmailChangeRecord,
    EmailChangeState,
    NewEmailChange,
)
from identity_service.domain.emails import normalise_email
from identity_service.domain.fields import Violations
from identity_service.domain.identity_keys import email_key
from identity_service.domain.ids import new_id
from identity_service.domain.mail import CODE_PLACEHOLDER, MailKind, OutgoingMail, code_message
from identity_service.domain.users import User, ensure_email_change_allowed
from identity_service.service import access, replay
from identity_service.service.audit_trail import changed, record
from identity_service.service.idempotency import once, request_key
from identity_service.service.inputs import required_id
from identity_service.service.models import School
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, RollcallError, not_found
from shared.grpc_kit.auth import Caller

RATE_WINDOW = timedelta(hours=1)
USER_SCOPE = "email_change.user"
ADDRESS_SCOPE = "email_change.address"
DEV_KEY = b"rollcall-dev-only-code-secret-not-for-production"


@dataclass(frozen=True)
class CodeSettings:
    """The code policy and the code keys (current first; every one verifies, for rotation)."""

    policy: CodePolicy = field(default_factory=CodePolicy)
    keys: tuple[bytes, ...] = (DEV_KEY,)

    def __post_init__(self) -> None:
        if not self.keys or not all(self.keys):
            raise ValueError("at least one non-empty code key is required")

    @classmethod
    def from_hours(cls, lifetime_hours: float, keys: list[bytes]) -> CodeSettings:
        return cls(CodePolicy(lifetime=timedelta(hours=lifetime_hours)), tuple(keys))


async def request_email_change(
    new_uow: UnitOfWorkFactory,
    codes: CodeSettings,
    caller: Caller,
    *,
    user_id: str,
    new_email: str,
    disable_file_updates: bool,
    request_id: str,
) -> EmailChange:
    """Staff open an email change for a student of their school; a code mail goes to the new address."""
    found = Violations()
    target = required_id(user_id, "user_id", found)
    address = found.check(lambda: normalise_email(new_email, "new_email"), "")
    content = {"user_id": user_id, "new_email": new_email, "disable_file_updates": disable_file_updates}
    key = request_key(caller, "RequestEmailChange", request_id, found, **content)
    found.raise_if_any()

    async def change(uow: UnitOfWork) -> EmailChange:
        user = await access.user_for_staff(uow, caller, target, for_update=True)
        school = await school_of(uow, user)
        opened = await open_change(uow, codes, caller, user, school, address, disable_file_updates)
        return opened.public()

    return await once(new_uow, key, replay.EMAIL_CHANGE, change)


async def cancel_email_change(
    new_uow: UnitOfWorkFactory, caller: Caller, user_id: str, request_id: str
) -> EmailChange:
    """Staff cancel the student's pending change; its unsent code mail is dropped."""
    found = Violations()
    target = required_id(user_id, "user_id", found)
    key = request_key(caller, "CancelEmailChange", request_id, found, user_id=user_id)
    found.raise_if_any()

    async def change(uow: UnitOfWork) -> EmailChange:
        user = await access.user_for_staff(uow, caller, target, for_update=True)
        closed = await uow.email_changes.close_pending(user.id, EmailChangeState.CANCELLED)
        if closed is None:
            raise no_pending_change()
        await uow.outbox.discard_pending(user.id, MailKind.EMAIL_CHANGE_CODE)
        details = {"email_change_id": closed.id, "new_email": closed.new_email}
        await record(uow, caller, "email_change.cancelled", user, details)
        return closed.public()

    return await once(new_uow, key, replay.EMAIL_CHANGE, change)


async def open_change(
    uow: UnitOfWork,
    codes: CodeSettings,
    caller: Caller,
    user: User,
    school: School,
    address: str,
    disable_file_updates: bool,
    context: Mapping[str, Any] | None = None,
) -> EmailChangeRecord:
    """Open a change of ``user``'s email to ``address`` (normalised) in the caller's transaction:
    replaces the pending one, turns file updates off when asked, queues the code mail, audits."""
    ensure_email_change_allowed(user, disable_file_updates)
    holder = await uow.users.by_email(address)
    if holder is not None:
        whose = "the student's own address" if holder.id == user.id else "used by another user"
        raise RollcallError(Reason.EMAIL_TAKEN, f"the new email address is already {whose}")
    if await uow.users.lookalike_of(address, other_than=user.id) is not None:
        raise RollcallError(
            Reason.EMAIL_CONFUSABLE, "the new email address looks like an address another user already has"
        )
    await _within_limits(uow, codes.policy, user.id, address)
    replaced = await uow.email_changes.close_pending(user.id, EmailChangeState.CANCELLED)
    if replaced is not None:
        await uow.outbox.discard_pending(user.id, MailKind.EMAIL_CHANGE_CODE)
    updated = user
    if disable_file_updates and not user.file_updates_disabled:
        updated = await uow.users.set_file_updates_disabled(user.id, True)
    opened = await uow.email_changes.open(
        NewEmailChange(
            id=new_id(),
            user_id=user.id,
            new_email=address,
            expire_time=codes.policy.expire_time(datetime.now(UTC)),
            max_attempts=codes.policy.max_attempts,
            file_updates_disabled=updated.file_updates_disabled,
            requested_by=caller.actor_id,
            client=caller.client,
        )
    )
    await uow.outbox.enqueue(_code_mail(codes.policy, school, user, opened))
    details: dict[str, Any] = changed(user, updated) | dict(context or {})
    details |= {"email_change_id": opened.id, "new_email": address}
    if replaced is not None:
        details["replaced_email_change_id"] = replaced.id
    await record(uow, caller, "email_change.requested", updated, details)
    return opened


async def school_of(uow: UnitOfWork, user: User) -> School:
    school = await uow.schools.get(user.school_id) if user.school_id else None
    if school is None:
        raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
    return school


def no_pending_change() -> RollcallError:
    return RollcallError(Reason.NO_PENDING_EMAIL_CHANGE, "the user has no pending email change")


def _code_mail(policy: CodePolicy, school: School, user: User, change: EmailChangeRecord) -> OutgoingMail:
    hours = policy.lifetime.total_seconds() / 3600
    subject, body = code_message(school.name, change.new_email, CODE_PLACEHOLDER, hours)
    return OutgoingMail(
        to=change.new_email,
        subject=subject,
        body=body,
        kind=MailKind.EMAIL_CHANGE_CODE,
        school_id=school.id,
        user_id=user.id,
        email_change_id=change.id,
    )


async def _within_limits(uow: UnitOfWork, policy: CodePolicy, user_id: str, address: str) -> None:
    per_user = await uow.rate_limits.hit(USER_SCOPE, user_id, RATE_WINDOW, policy.resend_per_user_per_hour)
    if not per_user:
        raise RollcallError(Reason.RATE_LIMITED, "too many email-change requests for this student; wait")
    per_address = await uow.rate_limits.hit(
        ADDRESS_SCOPE, email_key(address), RATE_WINDOW, policy.resend_per_address_per_hour
    )
    if not per_address:
        raise RollcallError(Reason.RATE_LIMITED, "too many codes sent to this address; wait")
