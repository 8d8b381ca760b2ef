"""Schools: created by an administrator, read by anyone authenticated."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from identity_service.domain.emails import normalise_domain
from identity_service.domain.fields import SCHOOL_NAME_MAX, Violations
from identity_service.service import replay
from identity_service.service.audit_trail import record
from identity_service.service.idempotency import once, read, request_key
from identity_service.service.inputs import required_id
from identity_service.service.models import School
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, not_found
from shared.grpc_kit.auth import Caller

MAX_EMAIL_DOMAINS = 20


async def create_school(
    new_uow: UnitOfWorkFactory,
    caller: Caller,
    name: str,
    email_domains: Sequence[str],
    sso_enabled: bool,
    request_id: str,
) -> School:
    """A new school; domains are normalised and de-duplicated (order kept)."""
    found = Violations()
    clean_name = found.text(name, "name", max_len=SCHOOL_NAME_MAX, required=True)
    domains = _domains(email_domains, found)
    key = request_key(
        caller, "CreateSchool", request_id, found, name=name, domains=list(email_domains), sso=sso_enabled
    )
    found.raise_if_any()
    school = School(str(uuid.uuid4()), clean_name, domains, sso_enabled, datetime.now(UTC))

    async def change(uow: UnitOfWork) -> School:
        created = await uow.schools.add(school)
        details = {
            "name": [None, created.name],
            "email_domains": [None, list(created.email_domains)],
            "sso_enabled": [None, created.sso_enabled],
        }
        await record(uow, caller, "school.created", None, details, school_id=created.id)
        return created

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


def _domains(raw: Sequence[str], found: Violations) -> tuple[str, ...]:
    if len(raw) > MAX_EMAIL_DOMAINS:
        found.add("email_domains", f"has too many entries ({len(raw)}, at most {MAX_EMAIL_DOMAINS})")
        return ()
    domains: list[str] = []
    for index, value in enumerate(raw):
        domain = found.check(functools.partial(normalise_domain, value, f"email_domains[{index}]"), "")
        if domain and domain not in domains:
            domains.append(domain)
    return tuple(domains)
