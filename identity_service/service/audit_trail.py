"""The audit trail (product rule 10): appended in the transaction of every change, read by staff.

``record`` is how every use case writes its event: who acted (actor and client), what happened
(``user.approved``), to whom, and what changed as ``{field: [old, new]}``. Secrets never go in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from identity_service.domain.events import USER_FIELDS as EVENT_USER_FIELDS
from identity_service.domain.fields import Violations
from identity_service.domain.users import User
from identity_service.service import access, paging
from identity_service.service.idempotency import read
from identity_service.service.inputs import optional_id
from identity_service.service.models import AuditEvent, NewAuditEvent, Page
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import invalid
from shared.grpc_kit.auth import Caller

PAGE_KIND = "audit"
USER_FIELDS = EVENT_USER_FIELDS
"""The User fields a change's details compare (the same ones an event's ``changed_fields`` names)."""


async def record(
    uow: UnitOfWork,
    caller: Caller,
    action: str,
    user: User | None,
    details: Mapping[str, Any],
    *,
    school_id: str | None = None,
    actor_id: str | None = None,
) -> None:
    """Append one event for ``user`` (or for ``school_id`` when no user is concerned)."""
    await uow.audit.append(event(caller, action, user, details, school_id=school_id, actor_id=actor_id))


def event(
    caller: Caller,
    action: str,
    user: User | None,
    details: Mapping[str, Any],
    *,
    school_id: str | None = None,
    actor_id: str | None = None,
) -> NewAuditEvent:
    """The event ``record`` appends; for use cases that append many at once (``append_many``)."""
    return NewAuditEvent(
        actor_id=actor_id or caller.actor_id,
        client=caller.client,
        action=action,
        user_id=user.id if user else None,
        school_id=user.school_id if user else school_id,
        details=dict(details),
    )


def changed(before: User | None, after: User | None) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for every user field that differs (None for a missing side)."""
    result: dict[str, list[Any]] = {}
    for name in USER_FIELDS:
        old = getattr(before, name) if before else None
        new = getattr(after, name) if after else None
        if old != new:
            result[name] = [_plain(old), _plain(new)]
    return result


async def list_audit_events(
    new_uow: UnitOfWorkFactory, caller: Caller, school_id: str, user_id: str, page_size: int, page_token: str
) -> Page[AuditEvent]:
    """Events of a school (or one user of it), newest first. Admin may name only a user."""
    found = Violations()
    school = optional_id(school_id, "school_id", found)
    user = optional_id(user_id, "user_id", found)
    page = paging.page_request(PAGE_KIND, (paging.integer,), page_size, page_token, found)
    found.raise_if_any()
    if school is None and (user is None or not caller.is_admin):
        raise invalid("school_id", "is required (admin may name only a user_id)")
    before = page.after[0] if page.after else None

    async def query(uow: UnitOfWork) -> Page[AuditEvent]:
        if school is not None:
            await access.school_for_staff(uow, caller, school)
        rows = await uow.audit.list(school, user, before, page.size + 1)
        return paging.paginate(PAGE_KIND, rows, page.size, lambda e: (e.id,))

    return await read(new_uow, query)


def _plain(value: Any) -> Any:
    """Enum members as their plain text, so details read the same after a JSON round trip."""
    return str(value) if isinstance(value, str) else value
