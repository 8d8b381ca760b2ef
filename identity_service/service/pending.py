"""The pending-student queue (product rule 5): list, approve, decline, delete."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from identity_service.domain import users as rules
from identity_service.domain.fields import NOTE_MAX, Violations
from identity_service.domain.users import User, UserStatus
from identity_service.service import access, notifications, paging, replay
from identity_service.service.audit_trail import changed, event, record
from identity_service.service.idempotency import once, read, request_key
from identity_service.service.inputs import optional_id, required_id
from identity_service.service.models import BatchDecision, Page
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory, pending_cursor
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller

PAGE_KIND = "pending"
PENDING_CURSOR = (paging.timestamp, paging.uuid_text)
BATCH_MAX = 500
ECHO_MAX = 64  # an item longer than any id is not echoed back (its position still says which it was)


@dataclass(frozen=True)
class _Decision:
    rpc: str
    batch_rpc: str
    action: str
    comment_field: str
    decide: Callable[[User], UserStatus]

    def details(self, before: User, after: User, text: str) -> dict[str, Any]:
        """The audit details of one decided student: what changed, and the note or reason."""
        found: dict[str, Any] = changed(before, after)
        if text:
            found[self.comment_field] = text
        return found


_APPROVE = _Decision("ApproveStudent", "BatchApproveStudents", "user.approved", "note", rules.approve)
_DECLINE = _Decision("DeclineStudent", "BatchDeclineStudents", "user.declined", "reason", rules.decline)


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
        await notifications.request_gone(uow, user.id)
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
        await record(uow, caller, decision.action, updated, decision.details(user, updated, text))
        if updated.school_id is not None:
            await notifications.students_decided(uow, await uow.schools.get(updated.school_id), [updated])
        return updated

    return await once(new_uow, key, replay.USER, change)


async def batch_approve_students(
    new_uow: UnitOfWorkFactory,
    caller: Caller,
    school_id: str,
    user_ids: Sequence[str],
    note: str,
    request_id: str,
) -> list[BatchDecision]:
    """Approve each of 1..500 students of the school on its own (ApproveStudent's rule per student)."""
    return await _decide_batch(new_uow, caller, _APPROVE, school_id, user_ids, note, request_id)


async def batch_decline_students(
    new_uow: UnitOfWorkFactory,
    caller: Caller,
    school_id: str,
    user_ids: Sequence[str],
    reason: str,
    request_id: str,
) -> list[BatchDecision]:
    """Decline each of 1..500 students of the school on its own (DeclineStudent's rule per student)."""
    return await _decide_batch(new_uow, caller, _DECLINE, school_id, user_ids, reason, request_id)


async def _decide_batch(
    new_uow: UnitOfWorkFactory,
    caller: Caller,
    decision: _Decision,
    school_id: str,
    user_ids: Sequence[str],
    comment: str,
    request_id: str,
) -> list[BatchDecision]:
    """One transaction: the students read and locked in one query, each decided by ``decision.decide``
    (the single RPC's rule), the decided ones written in one statement, one audit event each (the
    single RPC's shape) appended in one go. An item that cannot be decided fails alone, with a reason."""
    found = Violations()
    school = required_id(school_id, "school_id", found)
    if not user_ids:
        found.add("user_ids", f"is required (1..{BATCH_MAX} ids)")
    elif len(user_ids) > BATCH_MAX:
        found.add("user_ids", f"has too many entries ({len(user_ids)}, at most {BATCH_MAX})")
    field = decision.comment_field
    text = found.text(comment, field, max_len=NOTE_MAX)
    content = {"school_id": school_id, "user_ids": list(user_ids), field: comment}
    key = request_key(caller, decision.batch_rpc, request_id, found, **content)
    found.raise_if_any()
    plan = _plan(user_ids)

    async def change(uow: UnitOfWork) -> list[BatchDecision]:
        chosen_school = await access.school_for_staff(uow, caller, school)
        wanted = [item for item in plan if isinstance(item, str)]
        users = await uow.users.get_many(wanted, for_update=True)
        failed: dict[str, BatchDecision] = {}
        chosen: dict[UserStatus, list[User]] = {}
        for user_id in wanted:
            outcome = _outcome(decision, users.get(user_id), school)
            if isinstance(outcome, RollcallError):
                failed[user_id] = BatchDecision(user_id, None, outcome.reason, outcome.message)
            else:
                status, user = outcome
                chosen.setdefault(status, []).append(user)
        updated: dict[str, User] = {}
        for status, group in chosen.items():  # one status per decision: one statement
            updated.update(await uow.users.set_status_many([u.id for u in group], status))
        before = {u.id: u for group in chosen.values() for u in group}
        decided = [user_id for user_id in wanted if user_id in updated]
        await uow.audit.append_many(
            [
                event(caller, decision.action, updated[i], decision.details(before[i], updated[i], text))
                for i in decided
            ]
        )
        await notifications.students_decided(uow, chosen_school, [updated[i] for i in decided])
        done = {i: BatchDecision(i, updated[i], "", "") for i in decided}
        return [item if isinstance(item, BatchDecision) else done.get(item) or failed[item] for item in plan]

    return await once(new_uow, key, replay.BATCH_DECISIONS, change)


_NOT_FOUND = RollcallError(Reason.USER_NOT_FOUND, "user not found")
_NOT_OF_SCHOOL = RollcallError(Reason.NOT_SAME_SCHOOL, "not a user of this school")


def _plan(user_ids: Sequence[str]) -> list[str | BatchDecision]:
    """Per position: the canonical id to decide, or the item's failure (not an id; a repeat of an
    earlier position, decided there)."""
    plan: list[str | BatchDecision] = []
    first: dict[str, int] = {}
    for index, raw in enumerate(user_ids):
        where = f"user_ids[{index}]"
        echo = raw if len(raw) <= ECHO_MAX else ""
        user_id = optional_id(raw, where, Violations())
        if user_id is None:
            problem = "is required" if not raw.strip() else "is not an id (UUID)"
            plan.append(BatchDecision(echo, None, Reason.INVALID_ARGUMENT, f"{where} {problem}"))
        elif user_id in first:
            message = f"{where} repeats user_ids[{first[user_id]}] (decided there)"
            plan.append(BatchDecision(user_id, None, Reason.INVALID_ARGUMENT, message))
        else:
            first[user_id] = index
            plan.append(user_id)
    return plan


def _outcome(
    decision: _Decision, user: User | None, school_id: str
) -> tuple[UserStatus, User] | RollcallError:
    """The status ``decision`` gives ``user`` (its single RPC's rule), or why it cannot. A user of
    another school is NOT_SAME_SCHOOL and nothing more: the answer never carries another school's
    user."""
    if user is None:
        return _NOT_FOUND
    if user.school_id != school_id:
        return _NOT_OF_SCHOOL
    try:
        return decision.decide(user), user
    except RollcallError as error:
        return error
