"""Merge of a pending account into an existing one (product rule 5): one atomic step.

The pending account is deleted (freeing its address) and an email change to that address is opened
on the existing student with file updates turned off, in ONE transaction: if opening the change is
refused (rate limit, ...) the pending account is still there.
"""

from __future__ import annotations

from identity_service.domain.email_changes import EmailChange
from identity_service.domain.fields import Violations
from identity_service.domain.users import User, ensure_mergeable
from identity_service.service import access, notifications, replay
from identity_service.service.audit_trail import changed, record
from identity_service.service.email_change import CodeSettings, open_change, school_of
from identity_service.service.idempotency import once, request_key
from identity_service.service.inputs import required_id
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, not_found
from shared.grpc_kit.auth import Caller


async def merge_pending_student(
    new_uow: UnitOfWorkFactory,
    codes: CodeSettings,
    caller: Caller,
    *,
    pending_user_id: str,
    existing_user_id: str,
    request_id: str,
) -> EmailChange:
    """Delete the PENDING student and open the change of the existing student's email to its address."""
    found = Violations()
    pending_id = required_id(pending_user_id, "pending_user_id", found)
    existing_id = required_id(existing_user_id, "existing_user_id", found)
    content = {"pending_user_id": pending_user_id, "existing_user_id": existing_user_id}
    key = request_key(caller, "MergePendingStudent", request_id, found, **content)
    found.raise_if_any()

    async def change(uow: UnitOfWork) -> EmailChange:
        await access.user_for_staff(uow, caller, pending_id)
        pending, existing = await _lock_both(uow, pending_id, existing_id)
        ensure_mergeable(pending, existing)
        school = await school_of(uow, pending)
        await uow.users.delete(pending.id)
        await notifications.request_gone(uow, pending.id)
        details = changed(pending, None) | {"merged_into": existing.id}
        await record(uow, caller, "user.merged", pending, details)
        context = {"merged_from": pending.id}
        opened = await open_change(uow, codes, caller, existing, school, pending.email, True, context)
        return opened.public()

    return await once(new_uow, key, replay.EMAIL_CHANGE, change)


async def _lock_both(uow: UnitOfWork, pending_id: str, existing_id: str) -> tuple[User, User]:
    """Both users, row-locked in id order (two merges of the same pair cannot deadlock)."""
    locked: dict[str, User] = {}
    for user_id in sorted({pending_id, existing_id}):
        user = await uow.users.get(user_id, for_update=True)
        if user is None:
            raise not_found(Reason.USER_NOT_FOUND, "user")
        locked[user_id] = user
    return locked[pending_id], locked[existing_id]
