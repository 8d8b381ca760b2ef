"""Both rollcall services as real processes, the way SREs run them, for system and fault tests.

``process_stack(...)`` creates the stack's own identity and import databases, runs ``migrate`` for
each service, starts ``identity-service serve`` and ``import-service serve`` (and, when asked, the
mail ``courier``) on free ports with their own queue-name prefix, waits until both report SERVING
on ``grpc.health.v1``, and yields a ``ProcessStack``. On exit every process is stopped, the
exchanges and queues of the prefix are deleted and both databases dropped.

A ``ProcessStack`` can take one service down and bring it back the way faults happen in production:
``stop(name, signal.SIGKILL)`` (a crash), ``stop(name)`` (SIGTERM, a rolling restart),
``start(name)`` (same port, same environment) and ``restart(name, sig)``. With ``replicas`` it runs
several identity or import ``serve`` processes (``identity-2``, ``import-2``, ...: the same database,
ports of their own; the import service's identity address lists every identity replica, which its
client balances round robin; import replicas consume the one rows queue). It also carries the
clients tests drive the services with: gRPC stubs with the admin / platform tokens, a health probe,
job polling with deadlines, and the service logs (kept in a temporary directory, shown on failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import aio_pika
import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.amqp.publisher import amqp_user
from shared.amqp.topology import Topology
from shared.pg import with_database
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as ipb_grpc
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "stack-admin-token-0123456789"
PLATFORM_TOKEN = "stack-platform-token-0123456"
IMPORTER_TOKEN = "stack-importer-token-0123456"
TOKEN_SPEC = f"ops:admin:{ADMIN_TOKEN},web:platform:{PLATFORM_TOKEN},importer:importer:{IMPORTER_TOKEN}"
ADMIN_MD = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
PLATFORM_MD = (("authorization", f"Bearer {PLATFORM_TOKEN}"),)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
IDENTITY, IMPORT, COURIER = "identity", "import", "courier"
IDENTITY_RELAY, IMPORT_RELAY = "identity-relay", "import-relay"


def staff_md(actor_id: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {PLATFORM_TOKEN}"), ("x-rollcall-actor", actor_id))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 30.0, what: str = "condition", every: float = 0.1
) -> T:
    """Polls ``check`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        await asyncio.sleep(every)


@dataclass
class ServiceProcess:
    """One service command (``serve`` or ``courier``) that can be started again after it stopped."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if self._log is None:
            self._log = self.log_path.open("ab")
        self._log.write(f"\n===== start {self.starts + 1} of {self.name} =====\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.starts += 1

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Sends ``sig`` and waits for the exit (SIGKILL after ``timeout``); the exit code."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(sig)
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait(timeout=10)
                break
            await asyncio.sleep(0.05)
        return process.returncode

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, leaving out successful RPCs (tests poll a lot)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if not ('"event": "rpc"' in line and '"OK"' in line)]
        return "\n".join(kept[-lines:])


@dataclass
class ProcessStack:
    """A running rollcall: services, addresses, prefix, databases, tokens and clients."""

    tag: str
    prefix: str
    amqp_url: str
    identity_db_url: str
    import_db_url: str
    services: dict[str, ServiceProcess]
    metrics_port: int
    log_dir: Path
    metrics_ports: dict[str, int] = field(default_factory=dict)
    """/metrics port by service name (the import service's is ``metrics_port``)."""
    _channels: list[grpc.aio.Channel] = field(default_factory=list)
    _relay_channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    admin_token: str = ADMIN_TOKEN
    importer_token: str = IMPORTER_TOKEN
    platform_token: str = PLATFORM_TOKEN
    admin_md: tuple[tuple[str, str], ...] = ADMIN_MD
    platform_md: tuple[tuple[str, str], ...] = PLATFORM_MD

    def __post_init__(self) -> None:
        self.identity_channel = self._channel(self.identity_addr)
        self.import_channel = self._channel(self.import_addr)
        self.identity = ipb_grpc.IdentityServiceStub(self.identity_channel)
        self.importer = pb_grpc.ImportServiceStub(self.import_channel)

    def _relay_channel(self, name: str) -> grpc.aio.Channel:
        channel = self._relay_channels[name] = self._channel(self.services[name].addr)
        return channel

    def _channel(self, addr: str) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(
            addr,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.max_receive_message_length", 32 * 1024 * 1024),
                ("grpc.max_send_message_length", 32 * 1024 * 1024),
            ],
        )
        self._channels.append(channel)
        return channel

    @property
    def identity_addr(self) -> str:
        return self.services[IDENTITY].addr

    @property
    def import_addr(self) -> str:
        return self.services[IMPORT].addr

    @property
    def exchange(self) -> str:
        return Topology(self.prefix).exchange

    @property
    def rows_queue(self) -> str:
        return Topology(self.prefix).rows_queue

    @property
    def dead_queue(self) -> str:
        return Topology(self.prefix).dead_queue

    # --- processes ------------------------------------------------------------------------------

    async def health(self, name: str, timeout: float = 1.0) -> int | None:
        """The service's overall health status, or None when it does not answer in ``timeout``."""
        if name == IDENTITY:
            channel = self.identity_channel
        elif name == IMPORT:
            channel = self.import_channel
        else:
            channel = self._relay_channels.get(name) or self._relay_channel(name)
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return None
        return int(reply.status)

    async def wait_health(self, name: str, status: int = SERVING, timeout: float = 60.0) -> None:
        async def reached() -> bool:
            service = self.services[name]
            if service.process is not None and service.process.poll() is not None:
                raise AssertionError(
                    f"{name} exited with {service.process.returncode}:\n{service.log_tail()}"
                )
            return await self.health(name) == status

        await eventually(reached, timeout=timeout, what=f"{name} health {status}", every=0.1)

    async def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        return await self.services[name].stop(sig, timeout)

    async def start(self, name: str, *, wait: bool = True) -> None:
        self.services[name].start()
        if wait and name != COURIER:
            await self.wait_health(name)

    async def restart(self, name: str, sig: int = signal.SIGTERM, *, wait: bool = True) -> int | None:
        code = await self.stop(name, sig)
        await self.start(name, wait=wait)
        return code

    def logs(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {name} (last {lines} lines) ---\n{service.log_tail(lines)}"
            for name, service in self.services.items()
        )

    # --- import jobs ----------------------------------------------------------------------------

    async def get_job(self, job_id: str, timeout: float = 5.0) -> pb.ImportJob | None:
        """The job, or None while the import service does not know it (or does not answer)."""
        try:
            return await self.importer.GetImportJob(
                pb.GetImportJobRequest(job_id=job_id), metadata=self.admin_md, timeout=timeout
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                return None
            raise

    async def wait_job(
        self,
        job_id: str,
        *,
        timeout: float = 60.0,
        until: Callable[[pb.ImportJob], bool] | None = None,
        what: str = "",
    ) -> pb.ImportJob:
        """Polls GetImportJob until ``until(job)`` holds (default: COMPLETED)."""
        condition = until or (lambda job: job.state == pb.IMPORT_JOB_STATE_COMPLETED)

        async def reached() -> pb.ImportJob | None:
            job = await self.get_job(job_id)
            return job if job is not None and condition(job) else None

        try:
            job = await eventually(reached, timeout=timeout, what=what or f"job {job_id} completed")
        except AssertionError as error:
            last = await self.get_job(job_id)
            raise AssertionError(f"{error}\nlast job state: {last}\n{self.logs()}") from None
        assert job is not None
        return job

    async def row_results(
        self, job_id: str, outcomes: Sequence[rows_pb.RowOutcome.ValueType] = ()
    ) -> list[pb.RowRecord]:
        """Every recorded row of the job, by row number (all pages)."""
        records: list[pb.RowRecord] = []
        token = ""
        while True:
            page = await self.importer.ListRowResults(
                pb.ListRowResultsRequest(
                    job_id=job_id, outcomes=list(outcomes), page_size=500, page_token=token
                ),
                metadata=self.admin_md,
                timeout=30,
            )
            records.extend(page.results)
            token = page.next_page_token
            if not token:
                return records

    async def metric(self, name: str, *, service: str = IMPORT, label: str = "") -> float:
        """A counter of a service's /metrics (the import service's unless ``service`` names another
        with a metrics port), summed over its labels (only the series whose labels contain ``label``,
        e.g. ``method="ApplyStudentRows"``, when given); 0 when absent."""
        port = self.metrics_ports.get(service, self.metrics_port if service == IMPORT else 0)
        if not port:
            raise ValueError(f"{service} has no metrics port in this stack")

        def read() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                return str(reply.read().decode())

        total = 0.0
        for line in (await asyncio.to_thread(read)).splitlines():
            if line.startswith(name) and not line.startswith("#"):
                key = line.split(" ", 1)[0]
                if (key == name or key.startswith(name + "{")) and label in key:
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def replicas(self, kind: str) -> list[str]:
        """The service names of ``kind``'s serve processes (``identity``, ``identity-2``, ...)."""
        return [
            name
            for name in self.services
            if name == kind or (name.startswith(f"{kind}-") and name[len(kind) + 1 :].isdigit())
        ]

    # --- the databases, for checkers that count effects -----------------------------------------

    @contextlib.asynccontextmanager
    async def identity_db(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.identity_db_url)
        try:
            yield conn
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def import_db(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.import_db_url)
        try:
            yield conn
        finally:
            await conn.close()

    async def close_channels(self) -> None:
        for channel in self._channels:
            with contextlib.suppress(Exception):
                await channel.close()


async def recreate_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def delete_topology(amqp_url: str, prefix: str) -> None:
    names = Topology(prefix)
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        for queue in (names.rows_queue, names.dead_queue):
            with contextlib.suppress(Exception):
                channel = await connection.channel()
                await channel.queue_delete(queue, if_unused=False, if_empty=False)
        for exchange in (names.exchange, names.dead_exchange):
            with contextlib.suppress(Exception):
                channel = await connection.channel()
                await channel.exchange_delete(exchange)


def _migrate(command: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", command, "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command} migrate failed:\n{done.stdout.decode()}\n{done.stderr.decode()}")


@contextlib.asynccontextmanager
async def process_stack(
    pg_server_url: str,
    amqp_url: str,
    prefix: str,
    *,
    extra_env: dict[str, str] | None = None,
    smtp_port: int | None = None,
    relays: bool = False,
    identity_relays: int = 1,
    replicas: dict[str, int] | None = None,
) -> AsyncIterator[ProcessStack]:
    """Both services as processes on their own databases and queue prefix (and the courier sending
    to ``smtp_port`` when given; both event relays with ``relays``). ``extra_env`` overrides any
    ``ROLLCALL_*`` setting; ``identity_relays`` replicas of identity's relay: identity-relay,
    identity-relay-2, ...). ``replicas`` ({"identity": 2, "import": 2}) runs that many serve
    processes of a service (identity, identity-2, ...; import, import-2, ...), each on ports of its
    own, with a metrics port each when there are several identity replicas."""
    counts = {IDENTITY: 1, IMPORT: 1, **(replicas or {})}
    if set(counts) != {IDENTITY, IMPORT} or min(counts.values()) < 1:
        raise ValueError(f"replicas: identity and import, at least 1 each, not {replicas}")
    identity_name, import_name = f"{prefix}_identity", f"{prefix}_import"
    identity_port, import_port, metrics_port = free_port(), free_port(), free_port()
    identity_ports = [identity_port, *(free_port() for _ in range(counts[IDENTITY] - 1))]
    identity_metrics = [free_port() for _ in identity_ports] if len(identity_ports) > 1 else []
    import_ports = [import_port, *(free_port() for _ in range(counts[IMPORT] - 1))]
    import_metrics = [metrics_port, *(free_port() for _ in range(counts[IMPORT] - 1))]
    relay_port, import_relay_port = free_port(), free_port()
    log_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}_logs_"))
    env = {
        **os.environ,
        "ROLLCALL_IDENTITY_DATABASE_URL": await recreate_database(pg_server_url, identity_name),
        "ROLLCALL_IMPORT_DATABASE_URL": await recreate_database(pg_server_url, import_name),
        "ROLLCALL_AMQP_URL": amqp_url,
        "ROLLCALL_AMQP_PREFIX": prefix,
        "ROLLCALL_IDENTITY_PORT": str(identity_port),
        "ROLLCALL_IDENTITY_HOST": "127.0.0.1",
        "ROLLCALL_IMPORT_PORT": str(import_port),
        "ROLLCALL_IDENTITY_ADDR": (
            "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in identity_ports)
            if len(identity_ports) > 1
            else f"127.0.0.1:{identity_port}"
        ),
        "ROLLCALL_IDENTITY_METRICS_PORT": str(identity_metrics[0]) if identity_metrics else "0",
        "ROLLCALL_IMPORT_METRICS_PORT": str(metrics_port),
        "ROLLCALL_COURIER_METRICS_PORT": "0",
        "ROLLCALL_RELAY_METRICS_PORT": "0",
        "ROLLCALL_IMPORT_RELAY_METRICS_PORT": "0",
        "ROLLCALL_RELAY_HEALTH_PORT": str(relay_port),
        "ROLLCALL_IMPORT_RELAY_HEALTH_PORT": str(import_relay_port),
        "ROLLCALL_TOKENS": TOKEN_SPEC,
        "ROLLCALL_IMPORT_TOKEN": IMPORTER_TOKEN,
        # the tests' connectors publish as the broker user of the URL (user_id set), for any school
        "ROLLCALL_CONNECTORS": f"{amqp_user(amqp_url)}:*",
        "ROLLCALL_SHUTDOWN_GRACE_SECONDS": "5",
        "ROLLCALL_LOG_LEVEL": os.environ.get("ROLLCALL_LOG_LEVEL", "INFO"),
        "PYTHONUNBUFFERED": "1",
        "ROLLCALL_SMTP_HOST": "127.0.0.1",
        "ROLLCALL_SMTP_PORT": str(smtp_port or 1025),
        **(extra_env or {}),
    }
    for command in ("identity_service", "import_service"):
        await asyncio.to_thread(_migrate, command, env)
    python = [sys.executable, "-m"]
    services = {
        IDENTITY: ServiceProcess(
            IDENTITY, [*python, "identity_service", "serve"], env, identity_port, log_dir / "identity.log"
        ),
        IMPORT: ServiceProcess(
            IMPORT, [*python, "import_service", "serve"], env, import_port, log_dir / "import.log"
        ),
    }
    metrics_ports = {IMPORT: metrics_port}
    if identity_metrics:
        metrics_ports[IDENTITY] = identity_metrics[0]
    replicated = (
        (IDENTITY, "identity_service", identity_ports, identity_metrics, "ROLLCALL_IDENTITY"),
        (IMPORT, "import_service", import_ports, import_metrics, "ROLLCALL_IMPORT"),
    )
    for kind, module, ports, metrics_of, setting in replicated:
        for replica in range(2, len(ports) + 1):
            name = f"{kind}-{replica}"
            port, metrics = ports[replica - 1], metrics_of[replica - 1]
            services[name] = ServiceProcess(
                name,
                [*python, module, "serve"],
                {**env, f"{setting}_PORT": str(port), f"{setting}_METRICS_PORT": str(metrics)},
                port,
                log_dir / f"{name}.log",
            )
            metrics_ports[name] = metrics
    if smtp_port is not None:
        services[COURIER] = ServiceProcess(
            COURIER, [*python, "identity_service", "courier"], env, 0, log_dir / "courier.log"
        )
    if relays:
        services[IDENTITY_RELAY] = ServiceProcess(
            IDENTITY_RELAY,
            [*python, "identity_service", "relay"],
            env,
            relay_port,
            log_dir / "identity-relay.log",
        )
        for replica in range(2, identity_relays + 1):
            name, port = f"{IDENTITY_RELAY}-{replica}", free_port()
            services[name] = ServiceProcess(
                name,
                [*python, "identity_service", "relay"],
                {**env, "ROLLCALL_RELAY_HEALTH_PORT": str(port)},
                port,
                log_dir / f"{name}.log",
            )
        services[IMPORT_RELAY] = ServiceProcess(
            IMPORT_RELAY,
            [*python, "import_service", "relay"],
            env,
            import_relay_port,
            log_dir / "import-relay.log",
        )
    stack = ProcessStack(
        tag=prefix,
        prefix=prefix,
        amqp_url=amqp_url,
        identity_db_url=env["ROLLCALL_IDENTITY_DATABASE_URL"],
        import_db_url=env["ROLLCALL_IMPORT_DATABASE_URL"],
        services=services,
        metrics_port=metrics_port,
        log_dir=log_dir,
        metrics_ports=metrics_ports,
    )
    failed = False
    try:
        for service in services.values():
            service.start()
        for name in services:
            if name != COURIER:
                await stack.wait_health(name)
        yield stack
    except BaseException:
        failed = True
        raise
    finally:
        await stack.close_channels()
        for service in services.values():
            await service.stop(signal.SIGTERM, timeout=20)
            service.close_log()
        with contextlib.suppress(Exception):
            await delete_topology(amqp_url, prefix)
        for name in (identity_name, import_name):
            with contextlib.suppress(Exception):
                await drop_database(pg_server_url, name)
        if failed or os.environ.get("ROLLCALL_TEST_KEEP_LOGS"):
            sys.stderr.write(f"\nservice logs kept in {log_dir}\n")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


def job_counts(job: pb.ImportJob) -> dict[str, int]:
    """The job's counts as a plain dict (for exact comparisons in assertions)."""
    counts = job.counts
    return {
        "created": counts.created,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "skipped": counts.skipped,
        "failed": counts.failed,
        "approved": counts.approved,
    }


def describe(error: Any) -> str:
    """A short ``CODE reason: details`` for an RPC error (for assertion messages)."""
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return repr(error)
