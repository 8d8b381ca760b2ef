"""A scratch rollcall for benchmarks: own databases, own queue prefix, both services as processes.

The databases, free ports and queue teardown are ``tests/process_stack.py``'s (one implementation);
what is the bench's own is several identity replicas behind one address and quiet logs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from import_service.domain.jobs import JobSpec
from import_service.domain.rows import FileFormat
from shared.cli.publishing import publish_file
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pgrpc
from tests.process_stack import delete_topology, drop_database, free_port, recreate_database

BIN = Path(sys.executable).parent
PG_URL = os.environ.get("ROLLCALL_TEST_DATABASE_URL", "postgresql://localhost:5432/postgres")
AMQP_URL = os.environ.get("ROLLCALL_TEST_AMQP_URL", "amqp://guest:guest@localhost:5672/")
TOKENS = {"admin": "bench-admin-token-0001", "importer": "bench-importer-token-1"}


@dataclass
class Stack:
    tag: str
    identity_addr: str
    import_addr: str
    amqp_url: str
    prefix: str
    identity_db: str
    import_db: str
    processes: list[subprocess.Popen[bytes]]

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {TOKENS['admin']}"),)

    def pids(self) -> dict[str, int]:
        """The processes' ids: ``identity`` (the first replica's) and ``import`` (when it runs)."""
        names = ["import", "identity"] if self.import_addr else ["identity"]
        return {name: process.pid for name, process in zip(names, self.processes, strict=False)}


async def publish_csv(
    stack: Stack, path: Path, spec: JobSpec, rows_per_message: int, prefix: str | None = None
) -> None:
    """Publishes the CSV at ``path`` as job ``spec`` the way the CLI does (``rollcall import publish``),
    to the stack's broker under its prefix or ``prefix``."""
    await publish_file(
        path,
        spec,
        file_format=FileFormat.CSV,
        rows_per_message=rows_per_message,
        amqp_url=stack.amqp_url,
        prefix=prefix or stack.prefix,
    )


async def wait_completed(
    stack: Stack,
    job_id: str,
    *,
    every: float = 0.05,
    seen: Callable[[pb.ImportJob], Awaitable[None]] | None = None,
) -> pb.ImportJob:
    """The job once COMPLETED, asked every ``every`` seconds (``seen`` gets each answer). A job not
    there yet — the import service has not taken its first message, which a small file can beat —
    is asked again; a job that leaves RECEIVING otherwise stops the bench."""
    async with grpc.aio.insecure_channel(stack.import_addr) as channel:
        stub = pgrpc.ImportServiceStub(channel)
        while True:
            try:
                job = await stub.GetImportJob(
                    pb.GetImportJobRequest(job_id=job_id), metadata=stack.metadata()
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            else:
                if seen is not None:
                    await seen(job)
                if job.state == pb.IMPORT_JOB_STATE_COMPLETED:
                    return job
                if job.state != pb.IMPORT_JOB_STATE_RECEIVING:
                    raise SystemExit(f"job {job_id} is {pb.ImportJobState.Name(job.state)}: {job.hold}")
            await asyncio.sleep(every)


async def wait_serving(addr: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{addr} did not become SERVING within {timeout}s")


@contextlib.asynccontextmanager
async def running_stack(
    extra_env: dict[str, str] | None = None, identity_replicas: int = 1, with_import: bool = True
) -> AsyncIterator[Stack]:
    """Both services as processes; ``identity_replicas`` identity processes share the database and
    the import service spreads its calls over them (round robin), as several pods behind a Service.
    ``with_import=False``: the identity service alone (its benches; ``import_addr`` is empty)."""
    tag = f"bench_{uuid.uuid4().hex[:8]}"
    identity_db, import_db = f"{tag}_identity", f"{tag}_import"
    id_ports = [free_port() for _ in range(identity_replicas)]
    id_port, im_port = id_ports[0], free_port()
    env = dict(os.environ)
    env.update(
        {
            "ROLLCALL_IDENTITY_DATABASE_URL": await recreate_database(PG_URL, identity_db),
            "ROLLCALL_IMPORT_DATABASE_URL": await recreate_database(PG_URL, import_db),
            "ROLLCALL_AMQP_URL": AMQP_URL,
            "ROLLCALL_AMQP_PREFIX": tag,
            "ROLLCALL_IDENTITY_PORT": str(id_port),
            "ROLLCALL_IMPORT_PORT": str(im_port),
            "ROLLCALL_IDENTITY_ADDR": "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in id_ports),
            "ROLLCALL_IDENTITY_METRICS_PORT": "0",
            "ROLLCALL_IMPORT_METRICS_PORT": "0",
            "ROLLCALL_TOKENS": f"admin:admin:{TOKENS['admin']},importer:importer:{TOKENS['importer']}",
            "ROLLCALL_IMPORT_TOKEN": TOKENS["importer"],
            "ROLLCALL_LOG_LEVEL": os.environ.get("ROLLCALL_LOG_LEVEL", "WARNING"),
            **(extra_env or {}),
        }
    )
    for command in [
        ["identity-service", "migrate"],
        *([["import-service", "migrate"]] if with_import else []),
    ]:
        subprocess.run([str(BIN / command[0]), command[1]], env=env, check=True, stdout=subprocess.DEVNULL)
    log_dir = os.environ.get("BENCH_LOG_DIR")  # keep the services' JSON logs there (else discard them)

    def output(name: str) -> Any:
        return open(Path(log_dir) / f"{name}.log", "wb") if log_dir else subprocess.DEVNULL

    processes = [
        *(
            [subprocess.Popen([str(BIN / "import-service"), "serve"], env=env, stdout=output("import"))]
            if with_import
            else []
        ),
        *(
            subprocess.Popen(
                [str(BIN / "identity-service"), "serve"],
                env={**env, "ROLLCALL_IDENTITY_PORT": str(port)},
                stdout=output(f"identity-{n}"),
            )
            for n, port in enumerate(id_ports)
        ),
    ]
    import_addr = f"localhost:{im_port}" if with_import else ""
    stack = Stack(tag, f"localhost:{id_port}", import_addr, AMQP_URL, tag, identity_db, import_db, processes)
    try:
        for port in id_ports:
            await wait_serving(f"localhost:{port}")
        if with_import:
            await wait_serving(stack.import_addr)
        yield stack
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        await delete_topology(AMQP_URL, tag)
        await drop_database(PG_URL, identity_db)
        await drop_database(PG_URL, import_db)
