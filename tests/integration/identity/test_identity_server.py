"""The server around the servicer: health without a token, token authentication."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from identity_service.adapters.grpc.access_rules import SERVICE_NAME
from identity_service.bootstrap import IdentityApp
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from tests.integration.identity.identity_support import IdentityClient, refused


async def test_health_needs_no_token(identity_app: IdentityApp) -> None:
    assert identity_app.running is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{identity_app.running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_tokens(identity: IdentityClient) -> None:
    request = pb.GetSchoolRequest(id="x")
    await refused(identity.stub.GetSchool(request), grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    wrong = (("authorization", "Bearer not-a-known-token-at-all"),)
    await refused(
        identity.stub.GetSchool(request, metadata=wrong), grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"
    )
