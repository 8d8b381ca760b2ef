"""Authenticate: one answer for every failure, in about the same time, rate-limited per address."""

from __future__ import annotations

import statistics
import time
import uuid

import grpc

from identity_service.domain.passwords import PasswordHasher
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from tests.integration.identity.identity_support import Campus, IdentityClient, refused
from tests.integration.identity_email.email_support import authenticate, personal

SIGNUP_PASSWORD = "correct horse battery"
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def _approved(identity: IdentityClient, campus: Campus, email: str) -> str:
    user = await identity.sign_up(campus, email=email)
    await identity.stub.ApproveStudent(pb.ApproveStudentRequest(user_id=user.id), metadata=campus.staff_md)
    return user.id


async def test_unknown_email_and_wrong_password_look_the_same(
    identity: IdentityClient, campus: Campus
) -> None:
    email = personal()
    user_id = await _approved(identity, campus, email)
    assert (await authenticate(identity, f"  {email.upper()} ", SIGNUP_PASSWORD)).id == user_id
    unknown = await refused(
        authenticate(identity, personal(), SIGNUP_PASSWORD), UNAUTHENTICATED, "INVALID_CREDENTIALS"
    )
    wrong = await refused(
        authenticate(identity, email, "not the password"), UNAUTHENTICATED, "INVALID_CREDENTIALS"
    )
    malformed = await refused(
        authenticate(identity, "no address", "x"), UNAUTHENTICATED, "INVALID_CREDENTIALS"
    )
    oversized = await refused(
        authenticate(identity, email, "x" * 100_000), UNAUTHENTICATED, "INVALID_CREDENTIALS"
    )
    assert unknown.details() == wrong.details() == malformed.details() == oversized.details()
    assert SIGNUP_PASSWORD not in (wrong.details() or "")

    async def median_seconds(email_to_try: str) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            await refused(
                authenticate(identity, email_to_try, "not the password"),
                UNAUTHENTICATED,
                "INVALID_CREDENTIALS",
            )
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    wrong_time = await median_seconds(email)
    unknown_time = await median_seconds(personal())
    assert 0.4 < unknown_time / wrong_time < 2.5, (unknown_time, wrong_time)


async def test_only_active_users_sign_in(identity: IdentityClient, campus: Campus) -> None:
    pending_email, declined_email = personal(), personal()
    pending = await identity.sign_up(campus, email=pending_email)
    declined = await identity.sign_up(campus, email=declined_email)
    await identity.stub.DeclineStudent(
        pb.DeclineStudentRequest(user_id=declined.id), metadata=campus.staff_md
    )
    for email in (pending_email, declined_email):
        await refused(authenticate(identity, email, SIGNUP_PASSWORD), UNAUTHENTICATED, "INVALID_CREDENTIALS")
    await identity.stub.ApproveStudent(pb.ApproveStudentRequest(user_id=pending.id), metadata=campus.staff_md)
    assert (await authenticate(identity, pending_email, SIGNUP_PASSWORD)).id == pending.id
    no_password = await identity.new_student(campus)  # created by staff: no password yet
    await refused(
        authenticate(identity, no_password.email, "anything at all"), UNAUTHENTICATED, "INVALID_CREDENTIALS"
    )
    events = await identity.count("SELECT count(*) FROM audit_events WHERE user_id = $1", pending.id)
    assert events == 2  # signed up, approved: signing in is not a change


async def test_failed_sign_ins_are_rate_limited_per_address(identity: IdentityClient, campus: Campus) -> None:
    email = personal()
    await _approved(identity, campus, email)
    for _ in range(10):
        await refused(
            authenticate(identity, email, "not the password"), UNAUTHENTICATED, "INVALID_CREDENTIALS"
        )
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
    await refused(authenticate(identity, email, SIGNUP_PASSWORD), exhausted, "RATE_LIMITED")
    await refused(authenticate(identity, email.upper(), "not the password"), exhausted, "RATE_LIMITED")
    # an unknown address is limited the same way, so RATE_LIMITED does not reveal an account either
    nobody = personal()
    for _ in range(10):
        await refused(
            authenticate(identity, nobody, "not the password"), UNAUTHENTICATED, "INVALID_CREDENTIALS"
        )
    await refused(authenticate(identity, nobody, "not the password"), exhausted, "RATE_LIMITED")
    # the window passed: the limit lifts
    await identity.db.execute(
        "UPDATE rate_events SET created_at = created_at - interval '16 minutes' WHERE key = $1",
        f"sign_in.address:{email.lower()}",
    )
    assert (await authenticate(identity, email, SIGNUP_PASSWORD)).email == email


async def test_a_success_clears_the_count_and_rehashes_an_old_hash(
    identity: IdentityClient, campus: Campus
) -> None:
    email = personal()
    user_id = await _approved(identity, campus, email)
    for _ in range(9):
        await refused(
            authenticate(identity, email, "not the password"), UNAUTHENTICATED, "INVALID_CREDENTIALS"
        )
    old_hash = PasswordHasher(time_cost=2, memory_cost_kib=4096, parallelism=1).hash(SIGNUP_PASSWORD)
    await identity.db.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1", uuid.UUID(user_id), old_hash
    )
    version = await identity.db.fetchval("SELECT version FROM users WHERE id = $1", uuid.UUID(user_id))
    assert (await authenticate(identity, email, SIGNUP_PASSWORD)).id == user_id
    row = await identity.db.fetchrow(
        "SELECT password_hash, version FROM users WHERE id = $1", uuid.UUID(user_id)
    )
    assert row["password_hash"] != old_hash and row["password_hash"].startswith("$argon2id$")
    assert "t=1" in row["password_hash"] and row["version"] == version  # current parameters; not a change
    for _ in range(10):  # the count started again from zero
        await refused(
            authenticate(identity, email, "not the password"), UNAUTHENTICATED, "INVALID_CREDENTIALS"
        )
    await refused(
        authenticate(identity, email, SIGNUP_PASSWORD), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"
    )
