"""The pending-student queue (product rule 5): list, approve, decline, delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from identity_service.domain import users as rules
from identity_service.domain.fields import NOTE_MAX, Violations
from identity_service.domain.users import User, UserStatus
from identity_service.service import access, paging, replay
from identity_service.service.audit_trail import changed, record
from identity_service.service.idempotency import once, read, request_key
from identity_service.service.inputs import required_id
from identity_service.service.models import Page
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory, pending_cursor
from shared.grpc_kit.auth import Caller

PAGE_KIND = "pending"
PENDING_CURSOR = (paging.timestamp, paging.uuid_text)


@dataclass(frozen=True)
class _Decision:
    rpc: str
    action: str
    comment_field: str
    decide: Callable[[User], UserStatus]


_APPROVE = _Decision("ApproveStudent", "user.approved", "note", rules.approve)
_DECLINE = _Decision("DeclineStudent", "user.declined", "reason", rules.decline)


async def list_pending_students(
    new_uow: UnitOfWorkFactory, caller: Caller, school_id: str, page_size: int, page_token: str
) -> Page[User]:
    """PENDING students of the school, oldest first."""
    found = Violations()
    school = required_id(school_id, "school_id", found)
    page = paging.page_request(PAGE_KIND, PENDING_CURSOR, page_size, page_token, found)
    found.raise_if_any()

    async def query(uow: UnitOfWork) -> Page[User]:
        await access.school_for_staff(uow, caller, school)
        rows = await uow.users.pending(school, page.after, page.size + 1)
        return paging.paginate(PAGE_KIND, rows, page.size, pending_cursor)

    return await read(new_uow, query)


async def approve_student(
    new_uow: UnitOfWorkFactory, caller: Caller, user_id: str, note: str, request_id: str
) -> User:
    """PENDING → ACTIVE; the note goes into the audit trail."""
    return await _decide(new_uow, caller, _APPROVE, user_id, note, request_id)


async def decline_student(
    new_uow: UnitOfWorkFactory, caller: Caller, user_id: str, reason: str, request_id: str
) -> User:
    """PENDING → DECLINED; the account and its email stay (the email is still taken)."""
    return await _decide(new_uow, caller, _DECLINE, user_id, reason, request_id)


async def delete_pending_student(
    new_uow: UnitOfWorkFactory, caller: Caller, user_id: str, request_id: str
) -> None:
    """Delete a PENDING or DECLINED student; its email is free again once this commits."""
    found = Violations()
    target = required_id(user_id, "user_id", found)
    key = request_key(caller, "DeletePendingStudent", request_id, found, user_id=user_id)
    found.raise_if_any()

    async def change(uow: UnitOfWork) -> None:
        user = await access.user_for_staff(uow, caller, target, for_update=True)
        rules.ensure_deletable(user)
        await uow.users.delete(user.id)
        await record(uow, caller, "user.deleted", user, changed(user, None))

    await once(new_uow, key, replay.NOTHING, change)


async def _decide(
    new_uow: UnitOfWorkFactory,
    caller: Caller,
    decision: _Decision,
    user_id: str,
    comment: str,
    request_id: str,
) -> User:
    found = Violations()
    target = required_id(user_id, "user_id", found)
    field = decision.comment_field
    text = found.text(comment, field, max_len=NOTE_MAX)
    key = request_key(caller, decision.rpc, request_id, found, user_id=user_id, **{field: comment})
    found.raise_if_any()

    async def change(uow: UnitOfWork) -> User:
        user = await access.user_for_staff(uow, caller, target, for_update=True)
        status = decision.decide(user)
        updated = await uow.users.set_status(user.id, status)
        details: dict[str, Any] = changed(user, updated)
        if text:
            details[field] = text
        await record(uow, caller, decision.action, updated, details)
        return updated

    return await once(new_uow, key, replay.USER, change)
