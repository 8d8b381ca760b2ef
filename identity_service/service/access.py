"""The staff-of-school rule (api.md, Actor): who may act on a school's users.

``admin`` passes. A ``platform`` call must name an actor (``x-rollcall-actor``) who is an ACTIVE STAFF
user of the school concerned, else NOT_STAFF_OF_SCHOOL. A platform caller whose actor is not staff
anywhere is refused before it can learn whether a user id exists.
"""

from __future__ import annotations

from identity_service.domain.users import User, UserStatus, UserType
from identity_service.service.models import School
from identity_service.service.ports import UnitOfWork
from shared.errors import Reason, RollcallError, not_found
from shared.grpc_kit.auth import Caller
from shared.settings import Role


def not_staff() -> RollcallError:
    return RollcallError(Reason.NOT_STAFF_OF_SCHOOL, "the actor is not active staff of this school")


async def actor_school(uow: UnitOfWork, caller: Caller) -> str | None:
    """The school the caller's actor is ACTIVE STAFF of (None for no actor or anyone else)."""
    if caller.actor_id is None:
        return None
    actor = await uow.users.get(caller.actor_id)
    if actor is None or actor.user_type is not UserType.STAFF or actor.status is not UserStatus.ACTIVE:
        return None
    return actor.school_id


async def ensure_staff_of(uow: UnitOfWork, caller: Caller, school_id: str | None) -> None:
    """Admin, or a platform actor who is active staff of ``school_id``."""
    if caller.is_admin:
        return
    is_platform = caller.role is Role.PLATFORM
    if is_platform and school_id is not None and await actor_school(uow, caller) == school_id:
        return
    raise not_staff()


async def ensure_staff_somewhere(uow: UnitOfWork, caller: Caller) -> None:
    """Admin and importer pass; a platform actor must be active staff of some school."""
    if caller.role is Role.PLATFORM and await actor_school(uow, caller) is None:
        raise not_staff()


async def school_for_staff(uow: UnitOfWork, caller: Caller, school_id: str) -> School:
    """The school (SCHOOL_NOT_FOUND when unknown), once the caller may act on it."""
    school = await uow.schools.get(school_id)
    if school is None:
        raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
    await ensure_staff_of(uow, caller, school.id)
    return school


async def user_for_staff(uow: UnitOfWork, caller: Caller, user_id: str, *, for_update: bool = False) -> User:
    """The user (USER_NOT_FOUND when unknown), once the caller may act on the user's school."""
    if caller.role is not Role.ADMIN:
        await ensure_staff_somewhere(uow, caller)
    user = await uow.users.get(user_id, for_update=for_update)
    if user is None:
        raise not_found(Reason.USER_NOT_FOUND, "user")
    await ensure_staff_of(uow, caller, user.school_id)
    return user


async def user_for_reader(uow: UnitOfWork, caller: Caller, user_id: str) -> User:
    """GetUser: admin and importer read anyone; platform reads its actor itself or, as staff, its school."""
    if caller.role is Role.PLATFORM and caller.actor_id == user_id:
        user = await uow.users.get(user_id)
        if user is None:
            raise not_found(Reason.USER_NOT_FOUND, "user")
        return user
    if caller.role is Role.PLATFORM:
        return await user_for_staff(uow, caller, user_id)
    user = await uow.users.get(user_id)
    if user is None:
        raise not_found(Reason.USER_NOT_FOUND, "user")
    return user
