"""Product rule 1 under concurrency: of many simultaneous claims on one address, exactly one wins."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity.identity_support import Campus, IdentityClient, unique

CASE_VARIANTS = ("{l}@{d}", "{L}@{D}", " {l}@{D} ", "{Cap}@{d}", "{l}@{Cap_d}")


def variants(local: str, domain: str, count: int) -> list[str]:
    forms = [
        f.format(
            l=local, L=local.upper(), d=domain, D=domain.upper(), Cap=local.capitalize(), Cap_d=domain.title()
        )
        for f in CASE_VARIANTS
    ]
    return [forms[i % len(forms)] for i in range(count)]


async def _claim(identity: IdentityClient, campus: Campus, i: int, email: str) -> Any:
    if i % 2:
        return await identity.stub.SignUpStudent(
            pb.SignUpStudentRequest(
                school_id=campus.school.id,
                email=email,
                first_name="Race",
                last_name=f"Runner{i}",
                password="correct horse battery",
            ),
            metadata=identity.md("platform"),
        )
    return await identity.stub.CreateUser(
        pb.CreateUserRequest(user_type=res.USER_TYPE_STUDENT, school_id=campus.school.id, email=email),
        metadata=campus.staff_md,
    )


async def test_hundred_concurrent_claims_on_case_variants_yield_exactly_one_account(
    identity: IdentityClient, campus: Campus
) -> None:
    local = unique("race.")
    emails = variants(local, campus.domain, 100)
    assert len({e.strip().lower() for e in emails}) == 1 and len(set(emails)) > 1

    outcomes = await asyncio.gather(
        *(_claim(identity, campus, i, email) for i, email in enumerate(emails)), return_exceptions=True
    )

    winners = [o for o in outcomes if isinstance(o, res.User)]
    losers = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(winners) == 1, [
        type(o).__name__ for o in outcomes if not isinstance(o, res.User | grpc.RpcError)
    ]
    assert len(losers) == 99
    for error in losers:
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS, error.details()
        info = error_info(error)
        assert info is not None and info.reason == "EMAIL_TAKEN"
    assert await identity.users_with_email(emails[0]) == 1
    assert await identity.audit_count(user_id=winners[0].id) == 1


async def test_an_address_held_by_staff_is_refused_to_students_in_any_case(
    identity: IdentityClient, campus: Campus
) -> None:
    staff_email = campus.staff.email
    outcomes = await asyncio.gather(
        *(_claim(identity, campus, i, e) for i, e in enumerate(variants(*staff_email.split("@"), 10))),
        return_exceptions=True,
    )
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in outcomes)
    assert {error_info(o).reason for o in outcomes if isinstance(o, grpc.aio.AioRpcError)} == {"EMAIL_TAKEN"}
    assert await identity.users_with_email(staff_email) == 1
