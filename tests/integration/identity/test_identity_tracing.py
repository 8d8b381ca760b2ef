"""Identity in-process with tracing on (in-memory spans): a traced client's call continues in the
server's span and its SQL; refusals keep their status and ErrorInfo through both interceptors (the
import service reads them to tell outages from refusals); health checks make no span."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from identity_service.bootstrap import IdentityApp
from shared import tracing
from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.settings import Settings
from tests.integration.identity.identity_support import TOKENS, running_identity

ADMIN = (("authorization", f"Bearer {TOKENS['admin']}"),)


@pytest.fixture
async def traced() -> AsyncIterator[InMemorySpanExporter]:
    """Tracing on in this process before identity is built (as its bootstrap does with the setting)."""
    exporter = InMemorySpanExporter()
    tracing.install("rollcall-test", exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing.uninstall()


@pytest.fixture
async def app(traced: InMemorySpanExporter, identity_settings: Settings) -> AsyncIterator[IdentityApp]:
    async with running_identity(identity_settings) as running:
        yield running


@pytest.fixture
async def channel(app: IdentityApp) -> AsyncIterator[grpc.aio.Channel]:
    assert app.running is not None
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{app.running.port}", interceptors=tracing.client_interceptors()
    ) as opened:
        yield opened


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_a_traced_call_continues_in_identitys_server_span_and_its_sql(
    traced: InMemorySpanExporter, channel: grpc.aio.Channel
) -> None:
    stub = pb_grpc.IdentityServiceStub(channel)
    with tracing.span("caller"):
        school = await stub.CreateSchool(
            pb.CreateSchoolRequest(name=f"Traced {uuid.uuid4().hex[:6]}", email_domains=["trace.example"]),
            metadata=ADMIN,
            timeout=10,
        )
    assert school.id

    spans = list(traced.get_finished_spans())
    [caller] = [s for s in spans if s.name == "caller"]
    [client] = [s for s in _children(spans, caller) if s.kind is SpanKind.CLIENT]
    [server] = [s for s in _children(spans, client) if s.kind is SpanKind.SERVER]
    assert server.name == client.name == "/rollcall.identity.v1.IdentityService/CreateSchool"
    statements = [s for s in _children(spans, server) if s.kind is SpanKind.CLIENT]
    assert statements and all(s.attributes and s.attributes["db.system"] == "postgresql" for s in statements)
    assert {s.context.trace_id for s in (caller, client, server, *statements) if s.context} == {
        caller.context.trace_id if caller.context else 0
    }


async def test_a_refusal_keeps_its_status_and_error_info_through_the_interceptors(
    traced: InMemorySpanExporter, channel: grpc.aio.Channel
) -> None:
    stub = pb_grpc.IdentityServiceStub(channel)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetUser(pb.GetUserRequest(id=str(uuid.uuid4())), metadata=ADMIN, timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.GetUser(pb.GetUserRequest(id=str(uuid.uuid4())), timeout=10)

    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    info = error_info(refused.value)
    assert info is not None and info.domain == "rollcall" and info.reason == "USER_NOT_FOUND"
    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
    servers = [s for s in traced.get_finished_spans() if s.kind is SpanKind.SERVER]
    # the code on each server span; client errors leave the status UNSET (OpenTelemetry's gRPC rules)
    assert [(s.attributes or {}).get("rpc.grpc.status_code") for s in servers] == [5, 16]
    assert {s.status.status_code for s in servers} == {StatusCode.UNSET}


async def test_health_checks_make_no_span(traced: InMemorySpanExporter, channel: grpc.aio.Channel) -> None:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )

    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert not [s for s in traced.get_finished_spans() if "Health" in s.name]
