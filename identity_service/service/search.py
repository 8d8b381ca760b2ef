"""Finding students: search by name/email/username, and duplicate candidates of a pending student."""

from __future__ import annotations

from collections.abc import Sequence

from identity_service.domain import duplicates
from identity_service.domain.fields import QUERY_MAX, Violations
from identity_service.domain.users import User, UserStatus, UserType, ensure_student
from identity_service.service import access, paging
from identity_service.service.idempotency import read
from identity_service.service.inputs import enum_list, required_id
from identity_service.service.models import Page
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory, UserSearch, search_cursor
from shared.grpc_kit.auth import Caller

PAGE_KIND = "search"
SEARCH_CURSOR = (paging.text, paging.text, paging.uuid_text)
MAX_CANDIDATES = 20
CANDIDATE_POOL = 200  # proposed by the database before the domain scores them


async def search_users(
    new_uow: UnitOfWorkFactory,
    caller: Caller,
    *,
    school_id: str,
    query: str,
    user_types: Sequence[UserType | None],
    statuses: Sequence[UserStatus | None],
    page_size: int,
    page_token: str,
) -> Page[User]:
    """Users of the school whose name, email or username contains ``query`` (any case), by name."""
    found = Violations()
    school = required_id(school_id, "school_id", found)
    text = found.text(query, "query", max_len=QUERY_MAX)
    types = enum_list(user_types, "user_types", found)
    wanted = enum_list(statuses, "statuses", found)
    page = paging.page_request(PAGE_KIND, SEARCH_CURSOR, page_size, page_token, found)
    found.raise_if_any()

    async def run(uow: UnitOfWork) -> Page[User]:
        await access.school_for_staff(uow, caller, school)
        rows = await uow.users.search(UserSearch(school, text, types, wanted, page.after, page.size + 1))
        return paging.paginate(PAGE_KIND, rows, page.size, search_cursor)

    return await read(new_uow, run)


async def find_duplicate_candidates(
    new_uow: UnitOfWorkFactory, caller: Caller, user_id: str
) -> list[duplicates.Candidate]:
    """Students of the same school who are probably this student (rule 6), best first, at most 20."""
    found = Violations()
    target = required_id(user_id, "user_id", found)
    found.raise_if_any()

    async def run(uow: UnitOfWork) -> list[duplicates.Candidate]:
        user = await access.user_for_staff(uow, caller, target)
        ensure_student(user)
        proposed = await uow.users.duplicate_candidates(user, CANDIDATE_POOL)
        scored = (duplicates.score_candidate(user, other, similarity) for other, similarity in proposed)
        return duplicates.rank(c for c in scored if c is not None)[:MAX_CANDIDATES]

    return await read(new_uow, run)
