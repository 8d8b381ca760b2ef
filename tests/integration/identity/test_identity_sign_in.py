"""ResolveSignIn (product rule 4): what a sign-in page offers for an address."""

from __future__ import annotations

import uuid

from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from tests.integration.identity.identity_support import Campus, IdentityClient, invalid, not_found, unique

FOUND = pb.SIGN_IN_OUTCOME_ACCOUNT_FOUND
TRY_SCHOOL = pb.SIGN_IN_OUTCOME_TRY_SCHOOL_EMAIL
CREATE = pb.SIGN_IN_OUTCOME_CREATE_ACCOUNT


async def _resolve(identity: IdentityClient, email: str, school_id: str = "") -> pb.ResolveSignInResponse:
    request = pb.ResolveSignInRequest(email=email, school_id=school_id)
    return await identity.stub.ResolveSignIn(request, metadata=identity.md("platform"))


async def test_existing_account_in_any_case(identity: IdentityClient) -> None:
    campus = await identity.new_campus(sso=True)
    answer = await _resolve(identity, f"  {campus.staff.email.upper()} ", campus.school.id)
    assert answer.outcome == FOUND and answer.sso_enabled
    assert list(answer.school_email_domains) == [campus.domain]
    assert (await _resolve(identity, campus.staff.email)).outcome == FOUND


async def test_unknown_address_outside_the_school_domains(identity: IdentityClient) -> None:
    campus = await identity.new_campus(sso=True)
    answer = await _resolve(identity, f"{unique()}@gmail.com", campus.school.id)
    assert (answer.outcome, list(answer.school_email_domains), answer.sso_enabled) == (
        TRY_SCHOOL,
        [campus.domain],
        True,
    )


async def test_unknown_address_at_the_school_or_without_school(
    identity: IdentityClient, campus: Campus
) -> None:
    assert (await _resolve(identity, campus.email(), campus.school.id)).outcome == CREATE
    assert (await _resolve(identity, f"a@cs.{campus.domain}", campus.school.id)).outcome == CREATE
    answer = await _resolve(identity, f"{unique()}@gmail.com")
    assert (answer.outcome, list(answer.school_email_domains), answer.sso_enabled) == (CREATE, [], False)
    bare = await identity.new_school(domains=[])
    assert (await _resolve(identity, f"{unique()}@gmail.com", bare.id)).outcome == CREATE


async def test_errors(identity: IdentityClient) -> None:
    await not_found(_resolve(identity, "a@b.edu", str(uuid.uuid4())), "SCHOOL_NOT_FOUND")
    await invalid(_resolve(identity, "not an address"), "email", reason="INVALID_EMAIL")
    await invalid(_resolve(identity, ""), "email", reason="INVALID_EMAIL")
    await invalid(_resolve(identity, "a@b.edu", "school-1"), "school_id")
