"""Schools: created by an administrator, read by anyone authenticated, their settings changed by an
administrator or (import settings only) by staff of the school. Field rules: ``domain.schools``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from identity_service.domain import notifications
from identity_service.domain import schools as rules
from identity_service.domain.fields import Violations
from identity_service.domain.ids import new_id
from identity_service.domain.notifications import NotificationKind
from identity_service.service import access, replay
from identity_service.service.audit_trail import record
from identity_service.service.idempotency import once, read, request_key
from identity_service.service.inputs import required_id
from identity_service.service.models import School
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, not_found
from shared.grpc_kit.auth import Caller


async def create_school(
    new_uow: UnitOfWorkFactory,
    caller: Caller,
    name: str,
    email_domains: Sequence[str],
    sso_enabled: bool,
    request_id: str,
    change_threshold_percent: int | None = None,
    notify_emails: Sequence[str] = (),
) -> School:
    """A new school; domains are normalised and de-duplicated (order kept); the threshold is 10 when
    not given."""
    found = Violations()
    clean_name = rules.school_name(name, "name", found)
    domains = rules.email_domains(email_domains, "email_domains", found)
    threshold = rules.change_threshold_percent(change_threshold_percent, "change_threshold_percent", found)
    notify = rules.notify_emails(notify_emails, "notify_emails", found)
    key = request_key(
        caller,
        "CreateSchool",
        request_id,
        found,
        name=name,
        domains=list(email_domains),
        sso=sso_enabled,
        threshold=change_threshold_percent,
        notify=list(notify_emails),
    )
    found.raise_if_any()
    school = School(new_id(), clean_name, domains, sso_enabled, datetime.now(UTC), threshold, notify)

    async def change(uow: UnitOfWork) -> School:
        created = await uow.schools.add(school)
        details = {name: [None, value] for name, value in _settings(created).items()}
        await record(uow, caller, "school.created", None, details, school_id=created.id)
        return created

    return await once(new_uow, key, replay.SCHOOL, change)


async def update_school(
    new_uow: UnitOfWorkFactory,
    caller: Caller,
    school_id: str,
    update_mask: Sequence[str],
    request_id: str,
    *,
    name: str = "",
    email_domains: Sequence[str] = (),
    sso_enabled: bool = False,
    change_threshold_percent: int = 0,
    notify_emails: Sequence[str] = (),
    muted_notifications: Sequence[NotificationKind | None] = (),
) -> School:
    """Change the fields ``update_mask`` names (the others are ignored, as AIP-134 says); audited as
    ``school.updated`` with ``{field: [old, new]}`` of what changed. Staff of the school may name only
    ``change_threshold_percent``, ``notify_emails`` and ``muted_notifications`` (the notification
    kinds switched off; None stands for a kind the request named that is not one)."""
    found = Violations()
    wanted = required_id(school_id, "school.id", found)
    paths = rules.update_paths(update_mask, found)
    asked: dict[str, Any] = {}
    if rules.NAME in paths:
        asked[rules.NAME] = rules.school_name(name, "school.name", found)
    if rules.EMAIL_DOMAINS in paths:
        asked[rules.EMAIL_DOMAINS] = rules.email_domains(email_domains, "school.email_domains", found)
    if rules.SSO_ENABLED in paths:
        asked[rules.SSO_ENABLED] = sso_enabled
    if rules.CHANGE_THRESHOLD_PERCENT in paths:
        field = "school.change_threshold_percent"
        asked[rules.CHANGE_THRESHOLD_PERCENT] = rules.change_threshold_percent(
            change_threshold_percent, field, found
        )
    if rules.NOTIFY_EMAILS in paths:
        asked[rules.NOTIFY_EMAILS] = rules.notify_emails(notify_emails, "school.notify_emails", found)
    if rules.MUTED_NOTIFICATIONS in paths:
        field = "school.muted_notifications"
        muted = notifications.muted_notifications(muted_notifications, field, found)
        asked[rules.MUTED_NOTIFICATIONS] = tuple(kind.value for kind in muted)
    raw = {
        rules.NAME: name,
        rules.EMAIL_DOMAINS: list(email_domains),
        rules.SSO_ENABLED: sso_enabled,
        rules.CHANGE_THRESHOLD_PERCENT: change_threshold_percent,
        rules.NOTIFY_EMAILS: list(notify_emails),
        rules.MUTED_NOTIFICATIONS: [kind.value if kind else None for kind in muted_notifications],
    }
    content = {path: raw[path] for path in paths}
    key = request_key(caller, "UpdateSchool", request_id, found, school_id=school_id, **content)
    found.raise_if_any()

    async def change(uow: UnitOfWork) -> School:
        school = await uow.schools.get(wanted, for_update=True)
        if school is None:
            raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
        await access.ensure_staff_of(uow, caller, school.id)
        if not caller.is_admin:
            rules.ensure_staff_may_change(paths)
        changed = replace(school, **asked)
        before, after = _settings(school), _settings(changed)
        details = {f: [before[f], after[f]] for f in paths if before[f] != after[f]}
        if not details:
            return school
        updated = await uow.schools.update(changed)
        await record(uow, caller, "school.updated", None, details, school_id=updated.id)
        return updated

    return await once(new_uow, key, replay.SCHOOL, change)


async def get_school(new_uow: UnitOfWorkFactory, school_id: str) -> School:
    found = Violations()
    wanted = required_id(school_id, "id", found)
    found.raise_if_any()

    async def query(uow: UnitOfWork) -> School:
        school = await uow.schools.get(wanted)
        if school is None:
            raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
        return school

    return await read(new_uow, query)


def _settings(school: School) -> dict[str, Any]:
    """The school's updatable fields as the audit trail shows them (lists, not tuples)."""
    return {
        rules.NAME: school.name,
        rules.EMAIL_DOMAINS: list(school.email_domains),
        rules.SSO_ENABLED: school.sso_enabled,
        rules.CHANGE_THRESHOLD_PERCENT: school.change_threshold_percent,
        rules.NOTIFY_EMAILS: list(school.notify_emails),
        rules.MUTED_NOTIFICATIONS: list(school.muted_notifications),
    }
