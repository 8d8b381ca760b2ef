"""Confirming an email change with the mailed code (product rule 8), optionally setting a password.

The try is counted FIRST, in its own committed transaction (one atomic UPDATE), and only then is the
code checked: however many guesses race, at most ``max_attempts`` are ever counted, and the last
wrong one locks the change. A right code applies the change in a second transaction, where the
unique email index decides between students racing for one address.
"""

from __future__ import annotations

from datetime import UTC, datetime

from identity_service.domain.codes import normalise_code, verify_code
from identity_service.domain.email_changes import AttemptCount, EmailChangeRecord, EmailChangeState
from identity_service.domain.fields import Violations
from identity_service.domain.mail import MailKind, OutgoingMail, change_notice
from identity_service.domain.passwords import validate_password
from identity_service.domain.users import User
from identity_service.service.audit_trail import changed, record
from identity_service.service.email_change import CodeSettings, no_pending_change, school_of
from identity_service.service.hashing import AsyncPasswordHasher
from identity_service.service.inputs import required_id
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, RollcallError, not_found
from shared.grpc_kit.auth import Caller
from shared.logging import mask_email
from shared.settings import Role

CODE_INPUT_MAX = 64


async def confirm_email_change(
    new_uow: UnitOfWorkFactory,
    hasher: AsyncPasswordHasher,
    codes: CodeSettings,
    caller: Caller,
    *,
    user_id: str,
    code: str,
    new_password: str,
) -> User:
    """The student's own session (or admin) confirms; returns the user with the new, verified email."""
    found = Violations()
    target = required_id(user_id, "user_id", found)
    if new_password:
        found.check(lambda: validate_password(new_password, "new_password"), "")
    found.raise_if_any()
    _ensure_own_session(caller, target)
    change, counted = await _count_try(new_uow, target)
    typed = normalise_code(code[:CODE_INPUT_MAX])
    if change.code_hash is None or not verify_code(typed, change.id, change.code_hash, codes.keys):
        await _wrong_code(new_uow, caller, change, counted)
    password_hash = await hasher.hash(new_password) if new_password else None
    async with new_uow() as uow:
        return await _apply(uow, caller, change, password_hash)


def _ensure_own_session(caller: Caller, user_id: str) -> None:
    """A signed-in person confirms only their own change; staff cannot type a student's code."""
    if caller.role is Role.PLATFORM and caller.actor_id is not None and caller.actor_id != user_id:
        raise RollcallError(Reason.PERMISSION_DENIED, "only the student can confirm their email change")


async def _count_try(new_uow: UnitOfWorkFactory, user_id: str) -> tuple[EmailChangeRecord, AttemptCount]:
    """Count the try and commit it; refusals that changed something (EXPIRED) are committed too."""
    async with new_uow() as uow:
        outcome = await _counted(uow, user_id)
    if isinstance(outcome, RollcallError):
        raise outcome
    return outcome


async def _counted(uow: UnitOfWork, user_id: str) -> tuple[EmailChangeRecord, AttemptCount] | RollcallError:
    if await uow.users.get(user_id) is None:
        return not_found(Reason.USER_NOT_FOUND, "user")
    change = await uow.email_changes.pending(user_id)
    if change is None:
        return _why_nothing_pending(await uow.email_changes.latest(user_id))
    if change.expire_time <= datetime.now(UTC):
        await uow.email_changes.set_state(change.id, EmailChangeState.EXPIRED)
        return _expired()
    counted = await uow.email_changes.count_attempt(change.id)
    if counted is None:  # the last try is being checked right now, or it was just closed
        return _attempts_exceeded()
    return change, counted


def _why_nothing_pending(latest: EmailChangeRecord | None) -> RollcallError:
    if latest is not None and latest.state is EmailChangeState.LOCKED:
        return _attempts_exceeded()
    if latest is not None and latest.state is EmailChangeState.EXPIRED:
        return _expired()
    return no_pending_change()


async def _wrong_code(
    new_uow: UnitOfWorkFactory, caller: Caller, change: EmailChangeRecord, counted: AttemptCount
) -> None:
    """Refuse a wrong code; the last allowed wrong try locks the change."""
    if not counted.is_last:
        left = counted.max_attempts - counted.attempts
        raise RollcallError(
            Reason.CODE_INVALID,
            f"the code is not right ({left} {'try' if left == 1 else 'tries'} left)",
            metadata={"attempts_left": str(left)},
        )
    async with new_uow() as uow:
        user = await uow.users.get(change.user_id)
        if await uow.email_changes.set_state(change.id, EmailChangeState.LOCKED) and user is not None:
            details = {"email_change_id": change.id, "attempts": counted.attempts}
            actor = caller.actor_id or user.id
            await record(uow, caller, "email_change.locked", user, details, actor_id=actor)
    raise _attempts_exceeded()


async def _apply(
    uow: UnitOfWork, caller: Caller, change: EmailChangeRecord, password_hash: str | None
) -> User:
    user = await uow.users.get(change.user_id, for_update=True)
    current = await uow.email_changes.pending(change.user_id, for_update=True)
    if user is None or current is None or current.id != change.id:
        raise no_pending_change()  # cancelled or replaced while the code was being checked
    holder = await uow.users.by_email(change.new_email)
    if holder is not None and holder.id != user.id:
        raise RollcallError(Reason.EMAIL_TAKEN, "the new email address was taken by another user meanwhile")
    updated = await uow.users.change_email(user.id, change.new_email, password_hash)
    await uow.email_changes.set_state(change.id, EmailChangeState.CONFIRMED)
    details = changed(user, updated) | {
        "email_change_id": change.id,
        "password_set": password_hash is not None,
    }
    await record(uow, caller, "email_change.confirmed", updated, details, actor_id=caller.actor_id or user.id)
    school = await school_of(uow, user)
    subject, body = change_notice(school.name, user.email, mask_email(updated.email))
    notice = OutgoingMail(
        to=user.email,
        subject=subject,
        body=body,
        kind=MailKind.EMAIL_CHANGE_NOTICE,
        school_id=school.id,
        user_id=user.id,
    )
    await uow.outbox.enqueue(notice)
    return updated


def _expired() -> RollcallError:
    return RollcallError(Reason.CODE_EXPIRED, "the code has expired; staff can start a new email change")


def _attempts_exceeded() -> RollcallError:
    return RollcallError(
        Reason.CODE_ATTEMPTS_EXCEEDED,
        "too many wrong codes: the email change is locked; staff can start a new one",
    )
