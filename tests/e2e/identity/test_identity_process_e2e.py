"""The identity service as SREs run it: ``migrate`` then ``serve`` in a process of its own, driven over
a real port, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.pg import with_database
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res

ROOT = Path(__file__).resolve().parents[3]
ADMIN = (("authorization", "Bearer e2e-admin-token-00001"),)
PLATFORM = (("authorization", "Bearer e2e-platform-token-001"),)
TOKENS = "ops:admin:e2e-admin-token-00001,web:platform:e2e-platform-token-001"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "identity_service", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode()


@pytest.fixture(scope="module")
async def e2e_env(pg_server_url: str) -> AsyncIterator[dict[str, str]]:
    name = f"rctest_e2e_{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "ROLLCALL_IDENTITY_DATABASE_URL": with_database(pg_server_url, name),
        "ROLLCALL_TOKENS": TOKENS,
        "ROLLCALL_IDENTITY_HOST": "127.0.0.1",
        "ROLLCALL_IDENTITY_PORT": str(_free_port()),
        "ROLLCALL_IDENTITY_METRICS_PORT": "0",
        "ROLLCALL_SHUTDOWN_GRACE_SECONDS": "2",
    }
    yield env
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_migrate_creates_the_database_once(e2e_env: dict[str, str]) -> None:
    code, out = await _run(e2e_env, "migrate")
    assert code == 0, out
    assert "0001_identity.sql" in out
    code, out = await _run(e2e_env, "migrate")
    assert code == 0 and "0001_identity.sql" not in out, out


async def test_serve_answers_then_drains_on_sigterm(e2e_env: dict[str, str]) -> None:
    await _run(e2e_env, "migrate")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "identity_service", "serve", env=e2e_env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{e2e_env['ROLLCALL_IDENTITY_PORT']}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
            await _drive(channel)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _drive(channel: grpc.aio.Channel) -> None:
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = pb_grpc.IdentityServiceStub(channel)
    school = await stub.CreateSchool(
        pb.CreateSchoolRequest(name="E2E", email_domains=["e2e.edu"]), metadata=ADMIN
    )
    request = pb.SignUpStudentRequest(
        school_id=school.id,
        email="Someone@Home.example",
        first_name="Some",
        last_name="One",
        password="a long secret",
    )
    user = await stub.SignUpStudent(request, metadata=PLATFORM)  # real argon2id costs
    assert (user.status, user.username) == (res.USER_STATUS_PENDING, "Someone@home.example")
