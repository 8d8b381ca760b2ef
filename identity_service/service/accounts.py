"""Accounts: creating users (staff or admin), self sign-up, sign-in help, reading users."""

from __future__ import annotations

from datetime import UTC, datetime

from identity_service.domain.emails import normalise_email
from identity_service.domain.fields import (
    AUTH_IDENTIFIER_MAX,
    NAME_MAX,
    USERNAME_MAX,
    Violations,
)
from identity_service.domain.ids import new_id
from identity_service.domain.passwords import validate_password
from identity_service.domain.sign_in import SignInResolution, resolve_sign_in
from identity_service.domain.users import User, UserOrigin, UserStatus, UserType
from identity_service.service import access, notifications, replay
from identity_service.service.audit_trail import changed, record
from identity_service.service.hashing import AsyncPasswordHasher
from identity_service.service.idempotency import once, read, request_key
from identity_service.service.inputs import optional_id, required_id
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, RollcallError, not_found
from shared.grpc_kit.auth import Caller
from shared.settings import Role


async def create_user(
    new_uow: UnitOfWorkFactory,
    caller: Caller,
    *,
    user_type: UserType | None,
    school_id: str,
    email: str,
    username: str,
    first_name: str,
    last_name: str,
    auth_identifier: str,
    request_id: str,
) -> User:
    """An ACTIVE user with origin STAFF. Students and staff need a school, employers have none;
    platform callers may create only students, of their actor's school. A student's username
    defaults to the email."""
    found = Violations()
    school = _school_for_type(user_type, school_id, found)
    address = found.check(lambda: normalise_email(email, "email"), "")
    name = found.text(username, "username", max_len=USERNAME_MAX) or None
    if name is None and user_type is UserType.STUDENT:
        name = address or None
    user = User(
        id=new_id(),
        user_type=user_type or UserType.STUDENT,
        status=UserStatus.ACTIVE,
        school_id=school,
        username=name,
        email=address,
        first_name=found.text(first_name, "first_name", max_len=NAME_MAX),
        last_name=found.text(last_name, "last_name", max_len=NAME_MAX),
        auth_identifier=found.text(auth_identifier, "auth_identifier", max_len=AUTH_IDENTIFIER_MAX),
        origin=UserOrigin.STAFF,
        file_updates_disabled=False,
        email_verified=False,
        create_time=datetime.now(UTC),
        update_time=datetime.now(UTC),
        version=1,
    )
    content = {"type": user_type, "school": school_id, "email": email, "username": username}
    content |= {"first": first_name, "last": last_name, "auth": auth_identifier}
    key = request_key(caller, "CreateUser", request_id, found, **content)
    found.raise_if_any()
    if caller.role is not Role.ADMIN and user.user_type is not UserType.STUDENT:
        raise RollcallError(Reason.PERMISSION_DENIED, "platform callers may create students only")

    async def change(uow: UnitOfWork) -> User:
        if user.school_id is not None:
            await access.school_for_staff(uow, caller, user.school_id)
        created = await uow.users.add(user, None)
        await record(uow, caller, "user.created", created, changed(None, created))
        return created

    return await once(new_uow, key, replay.USER, change)


async def sign_up_student(
    new_uow: UnitOfWorkFactory,
    hasher: AsyncPasswordHasher,
    caller: Caller,
    *,
    school_id: str,
    email: str,
    first_name: str,
    last_name: str,
    password: str,
    request_id: str,
) -> User:
    """A PENDING student of the school chosen, origin SELF_SIGNUP, username = the email (rule 3)."""
    found = Violations()
    school = required_id(school_id, "school_id", found)
    address = found.check(lambda: normalise_email(email, "email"), "")
    first = found.text(first_name, "first_name", max_len=NAME_MAX, required=True)
    last = found.text(last_name, "last_name", max_len=NAME_MAX, required=True)
    found.check(lambda: validate_password(password, "password"), "")
    content = {"school": school_id, "email": email, "first": first_name, "last": last_name}
    key = request_key(caller, "SignUpStudent", request_id, found, **content)  # never the password
    found.raise_if_any()
    password_hash = await hasher.hash(password)
    now = datetime.now(UTC)
    user = User(
        id=new_id(),
        user_type=UserType.STUDENT,
        status=UserStatus.PENDING,
        school_id=school,
        username=address,
        email=address,
        first_name=first,
        last_name=last,
        auth_identifier="",
        origin=UserOrigin.SELF_SIGNUP,
        file_updates_disabled=False,
        email_verified=False,
        create_time=now,
        update_time=now,
        version=1,
    )

    async def change(uow: UnitOfWork) -> User:
        chosen = await uow.schools.get(school)
        if chosen is None:
            raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
        created = await uow.users.add(user, password_hash)
        await record(uow, caller, "user.signed_up", created, changed(None, created), actor_id=created.id)
        await notifications.student_waiting(uow, chosen, created)
        return created

    return await once(new_uow, key, replay.USER, change)


async def resolve_sign_in_help(new_uow: UnitOfWorkFactory, email: str, school_id: str) -> SignInResolution:
    """What a sign-in page should offer (rule 4). With a school named, its domains always come back."""
    found = Violations()
    address = found.check(lambda: normalise_email(email, "email"), "")
    school = optional_id(school_id, "school_id", found)
    found.raise_if_any()

    async def query(uow: UnitOfWork) -> SignInResolution:
        chosen = await uow.schools.get(school) if school else None
        if school and chosen is None:
            raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
        exists = await uow.users.by_email(address) is not None
        domains = chosen.email_domains if chosen else None
        answer = resolve_sign_in(address, exists, domains, chosen.sso_enabled if chosen else False)
        return SignInResolution(answer.outcome, tuple(domains or ()), answer.sso_enabled)

    return await read(new_uow, query)


async def get_user(new_uow: UnitOfWorkFactory, caller: Caller, user_id: str) -> User:
    found = Violations()
    wanted = required_id(user_id, "id", found)
    found.raise_if_any()
    return await read(new_uow, lambda uow: access.user_for_reader(uow, caller, wanted))


async def lookup_user_by_email(new_uow: UnitOfWorkFactory, caller: Caller, email: str) -> User:
    """The holder of an address; a platform actor must be staff, and sees only its own school's users."""
    address = normalise_email(email, "email")

    async def query(uow: UnitOfWork) -> User:
        await access.ensure_staff_somewhere(uow, caller)
        user = await uow.users.by_email(address)
        if user is None:
            raise not_found(Reason.USER_NOT_FOUND, "user")
        if caller.role is Role.PLATFORM:
            await access.ensure_staff_of(uow, caller, user.school_id)
        return user

    return await read(new_uow, query)


def _school_for_type(user_type: UserType | None, school_id: str, found: Violations) -> str | None:
    if user_type is None:
        found.add("user_type", "is required")
        return optional_id(school_id, "school_id", found)
    if user_type is UserType.EMPLOYER:
        if (school_id or "").strip():
            found.add("school_id", "must be empty for employers")
        return None
    return required_id(school_id, "school_id", found) or None
