"""Sign-in with email and password (product rule 9).

Every failure answers INVALID_CREDENTIALS with the same message, after the same argon2id work: an
unknown address is checked against a dummy hash, a malformed one too. Only ACTIVE users with a
password get in (a PENDING or DECLINED student gets the same INVALID_CREDENTIALS, after the real
check, so nothing tells the states apart). Tries are counted per address BEFORE the password is
checked, in a committed transaction, and a success clears the count: at most SIGN_IN_LIMIT failed
tries per SIGN_IN_WINDOW, however many race. The count is kept per address, known or not, so
RATE_LIMITED does not tell whether an account exists either. A sign-in changes no user, so it
writes no audit event (a rehash of the password with new parameters is not a change).
"""

from __future__ import annotations

from datetime import timedelta

from identity_service.domain.emails import normalise_email
from identity_service.domain.fields import PASSWORD_MAX
from identity_service.domain.identity_keys import email_key
from identity_service.domain.users import User, UserStatus
from identity_service.service.hashing import AsyncPasswordHasher
from identity_service.service.ports import UnitOfWorkFactory
from shared.errors import Reason, RollcallError

SIGN_IN_SCOPE = "sign_in.address"
SIGN_IN_WINDOW = timedelta(minutes=15)
SIGN_IN_LIMIT = 10
_DUMMY_INPUT = "not a password anybody has"


async def authenticate(
    new_uow: UnitOfWorkFactory, hasher: AsyncPasswordHasher, email: str, password: str
) -> User:
    """The ACTIVE user holding ``email`` whose password is ``password``; else INVALID_CREDENTIALS."""
    address = _address_or_none(email)
    if address is None or not 0 < len(password) <= PASSWORD_MAX:
        await hasher.verify(None, _DUMMY_INPUT)
        raise invalid_credentials()
    subject = email_key(address)
    async with new_uow() as uow:
        allowed = await uow.rate_limits.hit(SIGN_IN_SCOPE, subject, SIGN_IN_WINDOW, SIGN_IN_LIMIT)
        found = await uow.users.credentials(address) if allowed else None
    if not allowed:
        raise RollcallError(Reason.RATE_LIMITED, "too many failed sign-ins for this address; try later")
    user, stored = found if found is not None else (None, None)
    matches = await hasher.verify(stored, password)
    if not matches or user is None or stored is None or user.status is not UserStatus.ACTIVE:
        raise invalid_credentials()
    fresh = await hasher.rehash(password) if hasher.needs_rehash(stored) else None
    async with new_uow() as uow:
        await uow.rate_limits.clear(SIGN_IN_SCOPE, subject)
        if fresh is not None:
            await uow.users.replace_password_hash(user.id, stored, fresh)
    return user


def invalid_credentials() -> RollcallError:
    return RollcallError(Reason.INVALID_CREDENTIALS, "the email address or the password is not right")


def _address_or_none(email: str) -> str | None:
    try:
        return normalise_email(email, "email")
    except RollcallError:
        return None
