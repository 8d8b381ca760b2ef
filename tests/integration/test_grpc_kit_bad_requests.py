"""Issue 7, the interceptor on a real port: an undecodable request (unary or a later message of a
client stream) is INVALID_ARGUMENT naming the field, and an unexpected exception is the last resort,
INTERNAL with a generic message and no internal text, logged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from shared.grpc_kit.auth import TokenAuthenticator
from shared.grpc_kit.errors import error_info, field_violations
from shared.grpc_kit.interceptor import INTERNAL_MESSAGE, RollcallInterceptor
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.settings import Role, parse_tokens

TOKEN = "kit-admin-token-000001"
METADATA = (("authorization", f"Bearer {TOKEN}"),)
SERVICE = "rollcall.test.Kit"
BAD = b"\xed\xa0\x80"


async def _crash(request: pb.GetImportJobRequest, context: Any) -> pb.ImportJob:
    raise RuntimeError("asyncpg said: invalid byte sequence for encoding UTF8 near password=hunter2")


async def _echo(request: pb.GetImportJobRequest, context: Any) -> pb.ImportJob:
    return pb.ImportJob(job_id=request.job_id)


async def _upload(requests: AsyncIterator[pb.SubmitFileRequest], context: Any) -> pb.ImportJob:
    names = [request.header.source_name async for request in requests]
    return pb.ImportJob(source_name=",".join(names))


@pytest.fixture
async def kit() -> AsyncIterator[grpc.aio.Channel]:
    handlers = {
        "Crash": grpc.unary_unary_rpc_method_handler(
            _crash, pb.GetImportJobRequest.FromString, pb.ImportJob.SerializeToString
        ),
        "Echo": grpc.unary_unary_rpc_method_handler(
            _echo, pb.GetImportJobRequest.FromString, pb.ImportJob.SerializeToString
        ),
        "Upload": grpc.stream_unary_rpc_method_handler(
            _upload, pb.SubmitFileRequest.FromString, pb.ImportJob.SerializeToString
        ),
    }
    rules = {f"/{SERVICE}/{name}": frozenset(Role) for name in handlers}
    interceptor = RollcallInterceptor(TokenAuthenticator(parse_tokens(f"kit:admin:{TOKEN}")), rules)
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(0)


def _raw(data: bytes) -> bytes:
    return data


async def test_an_unexpected_exception_is_internal_without_its_text(kit: grpc.aio.Channel) -> None:
    crash = kit.unary_unary(f"/{SERVICE}/Crash", _raw, pb.ImportJob.FromString)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await crash(pb.GetImportJobRequest(job_id="j").SerializeToString(), metadata=METADATA)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == INTERNAL_MESSAGE
    info = error_info(caught.value)
    assert info is not None and info.reason == "INTERNAL"


async def test_a_non_utf8_string_field_is_invalid_argument_naming_it(kit: grpc.aio.Channel) -> None:
    echo = kit.unary_unary(f"/{SERVICE}/Echo", _raw, pb.ImportJob.FromString)
    wire = pb.GetImportJobRequest(job_id="aQQQb").SerializeToString().replace(b"QQQ", BAD)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await echo(wire, metadata=METADATA)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [name for name, _ in field_violations(caught.value)] == ["job_id"]
    assert "DecodeError" not in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as garbage:
        await echo(b"\xff\xff\xff", metadata=METADATA)
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        await echo(pb.GetImportJobRequest(job_id="ok").SerializeToString(), metadata=METADATA)
    ).job_id == "ok"


async def test_a_later_message_of_a_client_stream_is_checked_too(kit: grpc.aio.Channel) -> None:
    upload = kit.stream_unary(f"/{SERVICE}/Upload", _raw, pb.ImportJob.FromString)
    good = pb.SubmitFileRequest(header=pb.FileHeader(source_name="a")).SerializeToString()
    bad = (
        pb.SubmitFileRequest(header=pb.FileHeader(source_name="QQQ")).SerializeToString().replace(b"QQQ", BAD)
    )
    assert (await upload(iter([good, good]), metadata=METADATA)).source_name == "a,a"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(iter([good, bad]), metadata=METADATA)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [name for name, _ in field_violations(caught.value)] == ["header.source_name"]
