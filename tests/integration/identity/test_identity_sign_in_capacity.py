"""Sign-in has its own argon2id capacity: a storm of sign-ups never holds an Authenticate back.

The service under test gets a password hasher whose *hashing* waits at a gate the test opens: while
it is closed, every hash slot is busy and the rest of the storm queues for one, exactly as in a real
storm, only without end. Authenticate calls must still complete — before any sign-up of the storm
has returned — and then, with the gate open, every sign-up completes too.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from identity_service.bootstrap import build_identity
from identity_service.domain.passwords import PasswordHasher
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.settings import Settings
from tests.integration.identity.identity_support import IdentityClient, identity_client

STORM = 200
SIGN_INS = 5
PASSWORD = "correct horse battery"
GUARD_SECONDS = 60  # only against a hang when the lanes are shared again; never reached when they are not


class GatedHasher(PasswordHasher):
    """Test-sized argon2id whose ``hash`` waits for ``gate`` (verifying never waits)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.hashing = 0
        self._lock = threading.Lock()
        super().__init__(time_cost=1, memory_cost_kib=8192, parallelism=1)

    def hash(self, password: str) -> str:
        with self._lock:
            self.hashing += 1
        try:
            self.gate.wait()
            return super().hash(password)
        finally:
            with self._lock:
                self.hashing -= 1


async def _until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), GUARD_SECONDS)


@pytest.fixture
async def gated(
    identity_settings: Settings, identity_db_url: str
) -> AsyncIterator[tuple[IdentityClient, GatedHasher]]:
    hasher = GatedHasher()
    settings = identity_settings.model_copy(update={"password_hash_slots": 2, "sign_in_slots": 2})
    app = await build_identity(settings, password_hasher=hasher)
    await app.start(port=0, host="127.0.0.1")
    try:
        async with identity_client(app, identity_db_url) as client:
            yield client, hasher
    finally:
        hasher.gate.set()
        await app.close(grace=1)


async def test_authenticate_completes_while_a_sign_up_storm_waits_for_hashing(
    gated: tuple[IdentityClient, GatedHasher],
) -> None:
    client, hasher = gated
    campus = await client.new_campus()
    web = client.md("platform")
    members = []
    for n in range(SIGN_INS):
        email = f"signin{n}-{uuid.uuid4().hex[:8]}@personal.example"
        user = await client.sign_up(campus, email=email, password=PASSWORD)
        await client.stub.ApproveStudent(pb.ApproveStudentRequest(user_id=user.id), metadata=campus.staff_md)
        members.append((email, user.id))

    hasher.gate.clear()
    returned: list[str] = []

    async def sign_up(n: int) -> res.User:
        request = pb.SignUpStudentRequest(
            school_id=campus.school.id,
            email=f"storm{n}-{uuid.uuid4().hex[:8]}@personal.example",
            first_name="Storm",
            last_name=f"Student {n}",
            password=PASSWORD,
        )
        try:
            return await client.stub.SignUpStudent(request, metadata=web)
        finally:
            returned.append(request.email)

    storm = [asyncio.create_task(sign_up(n)) for n in range(STORM)]
    # The storm holds both hash slots (the rest queue behind them) before anyone signs in.
    await _until(lambda: hasher.hashing == 2)

    async def sign_in(email: str) -> res.User:
        return await client.stub.Authenticate(
            pb.AuthenticateRequest(email=email, password=PASSWORD), metadata=web
        )

    signed_in = await asyncio.wait_for(
        asyncio.gather(*(sign_in(email) for email, _ in members)), timeout=GUARD_SECONDS
    )

    assert [u.id for u in signed_in] == [user_id for _, user_id in members]
    assert returned == [], "a sign-up of the storm returned before the sign-ins"
    assert not any(task.done() for task in storm)

    hasher.gate.set()
    created = await asyncio.gather(*storm)
    assert len({u.id for u in created}) == STORM
    assert all(u.status == res.USER_STATUS_PENDING for u in created)
    assert len(returned) == STORM


async def test_a_wrong_password_also_answers_during_the_storm(
    gated: tuple[IdentityClient, GatedHasher],
) -> None:
    """The dummy check for an unknown address runs on the sign-in lane too."""
    client, hasher = gated
    campus = await client.new_campus()
    hasher.gate.clear()
    blocked = asyncio.create_task(client.sign_up(campus))
    await _until(lambda: hasher.hashing == 1)
    request = pb.AuthenticateRequest(
        email=f"nobody-{uuid.uuid4().hex[:8]}@personal.example", password=PASSWORD
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(
            client.stub.Authenticate(request, metadata=client.md("platform")), GUARD_SECONDS
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not blocked.done()
    hasher.gate.set()
    assert (await blocked).status == res.USER_STATUS_PENDING
