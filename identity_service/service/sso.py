"""SSO sign-in (product.md Additions "Single sign-on"): ResolveSsoSignIn.

The web app has signed a person in with the school's identity provider and holds its ``subject``;
identity answers the ACTIVE student or staff member of that school whose auth identifier is the
subject, compared by ``identity_keys.auth_identifier_key`` (case folded, like usernames). An
ARCHIVED, PENDING or DECLINED match is FAILED_PRECONDITION with the status as reason
(``users.sso_status_refusal``); no match is USER_NOT_FOUND (the app offers sign-up); a school without
SSO is FAILED_PRECONDITION ``SSO_NOT_ENABLED`` — a subject from an identity provider the school
never turned on is not trusted. Reading only: nothing is changed, nothing audited.
"""

from __future__ import annotations

from identity_service.domain.fields import AUTH_IDENTIFIER_MAX, Violations
from identity_service.domain.users import User, sso_status_refusal
from identity_service.service.idempotency import read
from identity_service.service.inputs import required_id
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, RollcallError, not_found


async def resolve_sso_sign_in(new_uow: UnitOfWorkFactory, school_id: str, subject: str) -> User:
    found = Violations()
    school = required_id(school_id, "school_id", found)
    wanted = found.text(subject, "subject", max_len=AUTH_IDENTIFIER_MAX, required=True)
    found.raise_if_any()

    async def query(uow: UnitOfWork) -> User:
        chosen = await uow.schools.get(school)
        if chosen is None:
            raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
        if not chosen.sso_enabled:
            raise RollcallError(Reason.SSO_NOT_ENABLED, "the school does not sign in with SSO")
        user = await uow.users.by_auth_identifier(school, wanted)
        if user is None:
            raise not_found(Reason.USER_NOT_FOUND, "user")
        refusal = sso_status_refusal(user.status)
        if refusal is not None:
            raise refusal
        return user

    return await read(new_uow, query)
