"""The import service as SREs run it: ``migrate`` then ``serve`` in its own process, fed through
RabbitMQ like a connector would (JSON bodies), read over gRPC, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.amqp.publisher import amqp_user
from shared.amqp.topology import Topology, delete
from shared.pg import with_database
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as ipb_grpc
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc
from tests.integration.importer.importer_support import (
    ADMIN_MD,
    IMPORTER_TOKEN,
    TOKEN_SPEC,
    Connector,
    FakeIdentity,
    eventually,
    job_header,
    student_rows,
    unique,
)
from tests.process_stack import free_port

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def identity_port() -> AsyncIterator[int]:
    server = grpc.aio.server()
    ipb_grpc.add_IdentityServiceServicer_to_server(FakeIdentity(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port
    await server.stop(0)


@pytest.fixture
async def process_env(
    pg_server_url: str, amqp_url: str, amqp_prefix: str, identity_port: int
) -> AsyncIterator[dict[str, str]]:
    database = f"{amqp_prefix}_import_e2e"
    prefix = f"{amqp_prefix}_e2e"
    env = {
        **os.environ,
        "ROLLCALL_IMPORT_DATABASE_URL": with_database(pg_server_url, database),
        "ROLLCALL_AMQP_URL": amqp_url,
        "ROLLCALL_AMQP_PREFIX": prefix,
        "ROLLCALL_IDENTITY_ADDR": f"127.0.0.1:{identity_port}",
        "ROLLCALL_IMPORT_TOKEN": IMPORTER_TOKEN,
        "ROLLCALL_TOKENS": TOKEN_SPEC,
        "ROLLCALL_CONNECTORS": f"{amqp_user(amqp_url)}:*",
        "ROLLCALL_IMPORT_PORT": str(free_port()),
        "ROLLCALL_IMPORT_METRICS_PORT": "0",
        "ROLLCALL_SHUTDOWN_GRACE_SECONDS": "5",
    }
    yield env
    connection = await aio_pika.connect(amqp_url)
    await delete(await connection.channel(), Topology(prefix))
    await connection.close()
    conn = await asyncpg.connect(pg_server_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await conn.close()


async def _run(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "import_service", *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL
    )


async def test_migrate_serve_import_and_sigterm(process_env: dict[str, str]) -> None:
    migrate = await _run(process_env, "migrate")
    assert await asyncio.wait_for(migrate.wait(), 30) == 0
    server = await _run(process_env, "serve")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{process_env['ROLLCALL_IMPORT_PORT']}")
    try:
        health = health_pb2_grpc.HealthStub(channel)

        async def serving() -> bool:
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.aio.AioRpcError:
                return False
            return answer.status == health_pb2.HealthCheckResponse.SERVING

        await eventually(serving, timeout=30, what="the import service SERVING")
        job_id = await _publish_job(process_env)
        importer = pb_grpc.ImportServiceStub(channel)

        async def completed() -> pb.ImportJob | None:
            try:
                job = await importer.GetImportJob(pb.GetImportJobRequest(job_id=job_id), metadata=ADMIN_MD)
            except grpc.aio.AioRpcError as error:  # NOT_FOUND until the first message is consumed
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                return None
            return job if job.state == pb.IMPORT_JOB_STATE_COMPLETED else None

        job = await eventually(completed, what="job completed")
        assert (job.total_rows, job.counts.created) == (50, 50)
        server.terminate()  # SIGTERM
        assert await asyncio.wait_for(server.wait(), 15) == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        await channel.close()


async def _publish_job(env: dict[str, str]) -> str:
    """Publishes a 50-row job the way a non-Python connector would: JSON bodies, confirms."""
    connection = await aio_pika.connect(env["ROLLCALL_AMQP_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(Topology(env["ROLLCALL_AMQP_PREFIX"]).exchange)
        connector = Connector(channel, exchange, user_id=amqp_user(env["ROLLCALL_AMQP_URL"]))
        header = job_header(unique("school"))
        await connector.rows(header, student_rows(50), per_message=20, as_json=True)
        await connector.end(header, 50, as_json=True)
        return header.job_id
    finally:
        await connection.close()
