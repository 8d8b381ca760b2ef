"""What the identity integration tests share: the client helper, its tokens, and error assertions.

Every test makes its own school (with a unique email domain) and staff, so the tests can share one
database and one server for the whole session without seeing each other's data.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest

from identity_service.bootstrap import IdentityApp, build_identity
from identity_service.domain.identity_keys import email_key
from identity_service.domain.passwords import PasswordHasher
from shared.grpc_kit.errors import error_info, field_violations
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.settings import Settings

TOKENS = {
    "admin": "test-admin-token-0001",
    "platform": "test-platform-token-01",
    "importer": "test-importer-token-1",
}
TOKEN_SPEC = (
    f"admin:admin:{TOKENS['admin']},web:platform:{TOKENS['platform']},importer:importer:{TOKENS['importer']}"
)
Metadata = tuple[tuple[str, str], ...]


def unique(prefix: str = "x") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Campus:
    """A fresh school, one ACTIVE staff member of it, and the platform metadata acting as that staff."""

    school: res.School
    staff: res.User
    staff_md: Metadata

    @property
    def domain(self) -> str:
        return self.school.email_domains[0]

    def email(self, local: str | None = None) -> str:
        return f"{local or unique('s')}@{self.domain}"


@dataclass
class IdentityClient:
    """A gRPC stub on the running service plus a direct pool for checking what was (not) written."""

    stub: pb_grpc.IdentityServiceStub
    db: asyncpg.Pool

    @staticmethod
    def md(role: str, actor: str | None = None) -> Metadata:
        pairs = [("authorization", f"Bearer {TOKENS[role]}")]
        if actor:
            pairs.append(("x-rollcall-actor", actor))
        return tuple(pairs)

    @property
    def admin(self) -> Metadata:
        return self.md("admin")

    async def new_school(self, *, sso: bool = False, domains: Sequence[str] | None = None) -> res.School:
        request = pb.CreateSchoolRequest(
            name=f"School {unique()}",
            email_domains=list(domains if domains is not None else [f"{unique('u')}.edu"]),
            sso_enabled=sso,
        )
        return await self.stub.CreateSchool(request, metadata=self.admin)

    async def new_user(self, user_type: Any, school_id: str = "", **fields: Any) -> res.User:
        fields.setdefault("email", f"{unique('p')}@example.com")
        request = pb.CreateUserRequest(user_type=user_type, school_id=school_id, **fields)
        return await self.stub.CreateUser(request, metadata=self.admin)

    async def new_campus(self, *, sso: bool = False) -> Campus:
        school = await self.new_school(sso=sso)
        staff = await self.new_user(
            res.USER_TYPE_STAFF,
            school.id,
            email=f"{unique('staff')}@{school.email_domains[0]}",
            first_name="Sam",
            last_name="Staff",
        )
        return Campus(school, staff, self.md("platform", staff.id))

    async def new_student(self, campus: Campus, **fields: Any) -> res.User:
        fields.setdefault("email", campus.email())
        return await self.new_user(res.USER_TYPE_STUDENT, campus.school.id, **fields)

    async def sign_up(self, campus: Campus, **fields: Any) -> res.User:
        fields.setdefault("email", f"{unique('me')}@gmail.com")
        fields.setdefault("first_name", "Pat")
        fields.setdefault("last_name", "Pending")
        fields.setdefault("password", "correct horse battery")
        request = pb.SignUpStudentRequest(school_id=campus.school.id, **fields)
        return await self.stub.SignUpStudent(request, metadata=self.md("platform"))

    async def count(self, sql: str, *args: Any) -> int:
        return int(await self.db.fetchval(sql, *args))

    async def users_with_email(self, email: str) -> int:
        return await self.count("SELECT count(*) FROM users WHERE email_key = $1", email_key(email))

    async def audit_count(self, *, user_id: str | None = None, school_id: str | None = None) -> int:
        if user_id:
            return await self.count("SELECT count(*) FROM audit_events WHERE user_id = $1", user_id)
        return await self.count("SELECT count(*) FROM audit_events WHERE school_id = $1", school_id)


async def refused(
    call: Awaitable[Any], code: grpc.StatusCode, reason: str, fields: Sequence[str] = ()
) -> grpc.aio.AioRpcError:
    """Await ``call`` and check it failed with ``code``, ErrorInfo ``reason`` and exactly ``fields``."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == code, error.details()
    info = error_info(error)
    assert info is not None, "no ErrorInfo detail"
    assert (info.domain, info.reason) == ("rollcall", reason), error.details()
    assert sorted(name for name, _ in field_violations(error)) == sorted(fields), error.details()
    return error


async def invalid(call: Awaitable[Any], *fields: str, reason: str = "INVALID_ARGUMENT") -> None:
    await refused(call, grpc.StatusCode.INVALID_ARGUMENT, reason, fields)


async def not_staff(call: Awaitable[Any]) -> None:
    await refused(call, grpc.StatusCode.PERMISSION_DENIED, "NOT_STAFF_OF_SCHOOL")


async def not_found(call: Awaitable[Any], reason: str) -> None:
    await refused(call, grpc.StatusCode.NOT_FOUND, reason)


def service_settings(db_url: str, **overrides: Any) -> Settings:
    """Settings of an identity service for the tests: its database, the test tokens, no metrics port."""
    base: dict[str, Any] = {"tokens": TOKEN_SPEC, "identity_metrics_port": 0, "shutdown_grace_seconds": 1}
    return Settings(identity_database_url=db_url, **(base | overrides))


@contextlib.asynccontextmanager
async def running_identity(settings: Settings) -> AsyncIterator[IdentityApp]:
    """The identity service started in-process on a free port, argon2id at test-sized costs."""
    app = await build_identity(
        settings, password_hasher=PasswordHasher(time_cost=1, memory_cost_kib=8192, parallelism=1)
    )
    await app.start(port=0, host="127.0.0.1")
    try:
        yield app
    finally:
        await app.close(grace=1)


@contextlib.asynccontextmanager
async def identity_client(app: IdentityApp, db_url: str) -> AsyncIterator[IdentityClient]:
    """A client of ``app`` over a real port, with a direct pool on its database for checks."""
    assert app.running is not None
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.running.port}")
    db = await asyncpg.create_pool(db_url, min_size=1, max_size=5)
    assert db is not None
    try:
        yield IdentityClient(pb_grpc.IdentityServiceStub(channel), db)
    finally:
        await db.close()
        await channel.close()
