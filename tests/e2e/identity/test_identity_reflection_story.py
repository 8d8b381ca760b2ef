"""The seed's pending-request story driven the way grpcurl drives it: nothing but server reflection
for the schema and JSON for the requests, against ``identity-service serve`` in its own process.

The README's grpcurl examples send exactly these JSON bodies and headers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from shared.pg import with_database

ROOT = Path(__file__).resolve().parents[3]
ADMIN_TOKEN = "story-admin-token-00001"
PLATFORM_TOKEN = "story-platform-token-001"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _drop(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def served_identity(pg_server_url: str) -> Iterator[str]:
    name = f"rctest_story_{uuid.uuid4().hex[:10]}"
    port = _free_port()
    env = {
        **os.environ,
        "ROLLCALL_IDENTITY_DATABASE_URL": with_database(pg_server_url, name),
        "ROLLCALL_TOKENS": f"ops:admin:{ADMIN_TOKEN},web:platform:{PLATFORM_TOKEN}",
        "ROLLCALL_IDENTITY_PORT": str(port),
        "ROLLCALL_IDENTITY_METRICS_PORT": "0",
        "ROLLCALL_SHUTDOWN_GRACE_SECONDS": "2",
    }
    command = [sys.executable, "-m", "identity_service"]
    subprocess.run([*command, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=60)
    process = subprocess.Popen([*command, "serve"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        _wait_serving(f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        asyncio.run(_drop(pg_server_url, name))


def _wait_serving(addr: str) -> None:
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                time.sleep(0.1)  # polling a process we started, with a deadline
    raise AssertionError(f"{addr} never became SERVING")


class ReflectionClient:
    """grpcurl in a few lines: resolve methods by reflection, send JSON, get JSON back."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.database = ProtoReflectionDescriptorDatabase(channel)
        self.pool = descriptor_pool.DescriptorPool(self.database)

    def services(self) -> set[str]:
        return set(self.database.get_services())

    def call(self, method: str, body: dict[str, Any], token: str, actor: str = "") -> dict[str, Any]:
        service_name, _, rpc = method.rpartition("/")
        descriptor = self.pool.FindServiceByName(service_name).FindMethodByName(rpc)
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        response_class = message_factory.GetMessageClass(descriptor.output_type)
        request = json_format.Parse(json.dumps(body), request_class())
        metadata = [("authorization", f"Bearer {token}")] + ([("x-rollcall-actor", actor)] if actor else [])
        stub = self.channel.unary_unary(
            f"/{service_name}/{rpc}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        return json_format.MessageToDict(stub(request, metadata=metadata, timeout=10))


IDENTITY = "rollcall.identity.v1.IdentityService"


def test_reflection_lists_identity_and_health(served_identity: str) -> None:
    with grpc.insecure_channel(served_identity) as channel:
        services = ReflectionClient(channel).services()
    assert {IDENTITY, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services


def test_pending_request_story_over_reflection_and_json(served_identity: str) -> None:
    with grpc.insecure_channel(served_identity) as channel:
        client = ReflectionClient(channel)

        def admin(rpc: str, body: dict[str, Any]) -> dict[str, Any]:
            return client.call(f"{IDENTITY}/{rpc}", body, ADMIN_TOKEN)

        def staff(rpc: str, body: dict[str, Any]) -> dict[str, Any]:
            return client.call(f"{IDENTITY}/{rpc}", body, PLATFORM_TOKEN, actor=staff_id)

        def web(rpc: str, body: dict[str, Any]) -> dict[str, Any]:
            return client.call(f"{IDENTITY}/{rpc}", body, PLATFORM_TOKEN)

        school = admin("CreateSchool", {"name": "Example University", "emailDomains": ["uni.edu"]})
        staff_id = admin(
            "CreateUser",
            {
                "userType": "USER_TYPE_STAFF",
                "schoolId": school["id"],
                "email": "careers@uni.edu",
                "firstName": "Casey",
                "lastName": "Careers",
            },
        )["id"]
        loaded = staff(
            "CreateUser",
            {
                "userType": "USER_TYPE_STUDENT",
                "schoolId": school["id"],
                "email": "ann.lee@uni.edu",
                "username": "alee",
                "firstName": "Ann",
                "lastName": "Lee",
            },
        )
        help_text = web("ResolveSignIn", {"email": "ann.lee@gmail.com", "schoolId": school["id"]})
        assert help_text["outcome"] == "SIGN_IN_OUTCOME_TRY_SCHOOL_EMAIL"
        assert help_text["schoolEmailDomains"] == ["uni.edu"]

        pending = web(
            "SignUpStudent",
            {
                "schoolId": school["id"],
                "email": "Ann.Lee@Gmail.com",
                "firstName": "Ann",
                "lastName": "Lee",
                "password": "correct horse battery",
            },
        )
        assert (pending["status"], pending["origin"]) == ("USER_STATUS_PENDING", "USER_ORIGIN_SELF_SIGNUP")
        queue = staff("ListPendingStudents", {"schoolId": school["id"]})
        assert [u["id"] for u in queue["users"]] == [pending["id"]]

        candidates = staff("FindDuplicateCandidates", {"userId": pending["id"]})["candidates"]
        top = candidates[0]
        assert top["user"]["id"] == loaded["id"]
        assert "MATCH_REASON_SAME_NAME" in top["reasons"] and top["score"] > 0.5

        approved = staff("ApproveStudent", {"userId": pending["id"], "note": "alumna, checked"})
        assert approved["status"] == "USER_STATUS_ACTIVE"

        other = web(
            "SignUpStudent",
            {
                "schoolId": school["id"],
                "email": "bo@gmail.com",
                "firstName": "Bo",
                "lastName": "Ng",
                "password": "x" * 12,
            },
        )
        declined = staff("DeclineStudent", {"userId": other["id"], "reason": "not an alumnus"})
        assert declined["status"] == "USER_STATUS_DECLINED"
        with pytest.raises(grpc.RpcError) as taken:
            web(
                "SignUpStudent",
                {
                    "schoolId": school["id"],
                    "email": "BO@gmail.com",
                    "firstName": "B",
                    "lastName": "N",
                    "password": "y" * 12,
                },
            )
        assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS  # declined keeps its address
        assert staff("DeletePendingStudent", {"userId": other["id"]}) == {}
        again = web(
            "SignUpStudent",
            {
                "schoolId": school["id"],
                "email": "BO@gmail.com",
                "firstName": "B",
                "lastName": "N",
                "password": "y" * 12,
            },
        )
        assert again["status"] == "USER_STATUS_PENDING"  # deleting freed the address at once

        events = staff("ListAuditEvents", {"schoolId": school["id"]})["events"]
        actions = [e["action"] for e in events]
        assert len(actions) >= 7 and actions[0] == "user.signed_up"
        assert any(e.get("actorId") == staff_id for e in events)
