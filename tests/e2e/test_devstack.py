"""``make run`` and ``make reset`` as a developer uses them: ``python -m shared.devstack`` in a process
of its own, on a private prefix, private database names and free ports (the ``ROLLCALL_*`` settings
``make run`` passes on), with nothing on the SMTP port so that it starts its mail catcher.

The story: run → the banner only once every port answers (gRPC health SERVING on identity, import and
both relays, every metrics port, the mail catcher) → a sign-up, whose "waiting" mail lands as a
``.eml`` file in the folder the banner names → the README story's staff member again is
ALREADY_EXISTS (it cannot be walked twice on the same databases) → SIGINT: exit 0, every child
gone, every port closed → reset: databases, queues, exchanges and mail gone → run again: the same
school and staff member are created afresh → SIGTERM: exit 0, nothing left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from email import message_from_bytes, policy
from pathlib import Path

import aio_pika
import asyncpg
import grpc
import pytest
from aio_pika.exceptions import ChannelClosed
from grpc_health.v1 import health_pb2, health_pb2_grpc

from identity_service.adapters.amqp.job_events import notifications_queue
from shared.amqp.publisher import amqp_user
from shared.amqp.topology import Topology
from shared.devstack import DEV_TOKENS
from shared.pg import with_database
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as ipb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.process_stack import free_port

ROOT = Path(__file__).resolve().parents[2]
BANNER_TIMEOUT = 150.0
ADMIN = (("authorization", f"Bearer {DEV_TOKENS['admin']}"),)
PLATFORM = (("authorization", f"Bearer {DEV_TOKENS['platform']}"),)
GRPC_PORTS = (
    "ROLLCALL_IDENTITY_PORT",
    "ROLLCALL_IMPORT_PORT",
    "ROLLCALL_RELAY_HEALTH_PORT",
    "ROLLCALL_IMPORT_RELAY_HEALTH_PORT",
)
METRICS_PORTS = (
    "ROLLCALL_IDENTITY_METRICS_PORT",
    "ROLLCALL_IMPORT_METRICS_PORT",
    "ROLLCALL_COURIER_METRICS_PORT",
    "ROLLCALL_RELAY_METRICS_PORT",
    "ROLLCALL_IMPORT_RELAY_METRICS_PORT",
)


class Devstack:
    """One ``python -m shared.devstack <command>`` in a session of its own, its output read as it comes
    (the services write to the same pipe: it must never fill)."""

    def __init__(self, env: dict[str, str], mail_dir: Path) -> None:
        self.env = env
        self.mail_dir = mail_dir
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def command(self, name: str) -> list[str]:
        return [sys.executable, "-m", "shared.devstack", name, "--mail-dir", str(self.mail_dir)]

    def start(self) -> None:
        self.lines = []
        self.process = subprocess.Popen(
            self.command("run"),
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its process group: nothing of it can outlive the test
        )
        stream = self.process.stdout
        assert stream is not None
        self._reader = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines[-80:])

    async def banner(self) -> list[str]:
        """The banner's lines, once printed (fails when devstack exits first or it takes too long)."""
        deadline = time.monotonic() + BANNER_TIMEOUT
        while True:
            lines = list(self.lines)
            if "rollcall is running:\n" in lines:
                start = lines.index("rollcall is running:\n")
                end = next(
                    (i for i in range(start, len(lines)) if "Ctrl-C stops everything" in lines[i]), None
                )
                if end is not None:
                    return [line.rstrip("\n") for line in lines[start : end + 1]]
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"devstack exited ({self.process.returncode}) before its banner:\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no banner after {BANNER_TIMEOUT} s:\n{self.output}")
            await asyncio.sleep(0.05)

    def children(self) -> list[int]:
        assert self.process is not None
        return [pid for pid, ppid, _ in processes() if ppid == self.process.pid]

    async def stop(self, sig: int) -> int:
        assert self.process is not None and self._reader is not None
        self.process.send_signal(sig)
        returncode = await asyncio.to_thread(self.process.wait, 60)
        await asyncio.to_thread(self._reader.join, 30)  # EOF: no process holds its output any more
        assert not self._reader.is_alive(), f"something still writes to devstack's output:\n{self.output}"
        return returncode

    def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)

    def reset(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command("reset"),
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":  # a zombie has exited
            found.append((int(entry.name), int(fields[1]), int(fields[2])))
    return found


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1.0):
            return True
    except OSError:
        return False


async def serving(port: int) -> bool:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def metrics_answer(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


async def databases(pg_server_url: str, names: tuple[str, ...]) -> set[str]:
    conn = await asyncpg.connect(pg_server_url)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", list(names)
        )
    finally:
        await conn.close()
    return {row["datname"] for row in rows}


async def topology_left(amqp_url: str, prefix: str) -> list[str]:
    topology = Topology(prefix)
    left = []
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        for name in (topology.rows_queue, topology.dead_queue, notifications_queue(topology)):
            channel = await connection.channel()
            with contextlib.suppress(ChannelClosed):
                await channel.declare_queue(name, passive=True)
                left.append(f"queue {name}")
        for name in (topology.exchange, topology.dead_exchange, topology.events_exchange):
            channel = await connection.channel()
            with contextlib.suppress(ChannelClosed):
                await channel.declare_exchange(name, passive=True)
                left.append(f"exchange {name}")
    return left


async def school_and_staff(identity: ipb_grpc.IdentityServiceStub) -> res.School:
    """The README story's first two calls: Example University (uni.edu) and careers@uni.edu."""
    school = await identity.CreateSchool(
        ipb.CreateSchoolRequest(name="Example University", email_domains=["uni.edu"]),
        metadata=ADMIN,
        timeout=30,
    )
    await identity.CreateUser(
        ipb.CreateUserRequest(
            user_type=res.USER_TYPE_STAFF,
            school_id=school.id,
            email="careers@uni.edu",
            first_name="Casey",
            last_name="Careers",
        ),
        metadata=ADMIN,
        timeout=30,
    )
    return school


async def waiting_mail(mail_dir: Path, recipient: str, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(mail_dir.glob("*.eml")):
            mail = message_from_bytes(path.read_bytes(), policy=policy.default)
            if mail["To"] == recipient and "waiting" in str(mail["Subject"]):
                return path
        await asyncio.sleep(0.2)
    raise AssertionError(f"no waiting mail to {recipient} in {mail_dir}: {sorted(mail_dir.iterdir())}")


@pytest.fixture
def devstack(pg_server_url: str, amqp_url: str, tmp_path: Path) -> Devstack:
    tag = f"rcdev_{uuid.uuid4().hex[:10]}"
    ports = {name: str(free_port()) for name in (*GRPC_PORTS, *METRICS_PORTS, "ROLLCALL_SMTP_PORT")}
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROLLCALL_")}
    env.update(
        ports,
        ROLLCALL_AMQP_URL=amqp_url,
        ROLLCALL_AMQP_PREFIX=tag,
        ROLLCALL_IDENTITY_DATABASE_URL=with_database(pg_server_url, f"{tag}_identity"),
        ROLLCALL_IMPORT_DATABASE_URL=with_database(pg_server_url, f"{tag}_import"),
        ROLLCALL_IDENTITY_ADDR=f"127.0.0.1:{ports['ROLLCALL_IDENTITY_PORT']}",
        ROLLCALL_IDENTITY_HOST="127.0.0.1",
        ROLLCALL_SMTP_HOST="127.0.0.1",
        ROLLCALL_CONNECTORS=f"{amqp_user(amqp_url)}:*",
        ROLLCALL_SHUTDOWN_GRACE_SECONDS="5",
        PYTHONUNBUFFERED="1",
    )
    return Devstack(env, tmp_path / "mail")


async def test_run_sign_up_mail_stop_reset_and_run_again(
    devstack: Devstack, pg_server_url: str, amqp_url: str
) -> None:
    env = devstack.env
    prefix = env["ROLLCALL_AMQP_PREFIX"]
    names = (f"{prefix}_identity", f"{prefix}_import")
    grpc_ports = [int(env[name]) for name in GRPC_PORTS]
    metrics_ports = [int(env[name]) for name in METRICS_PORTS]
    smtp_port = int(env["ROLLCALL_SMTP_PORT"])
    assert not answers(smtp_port)
    try:
        # --- run: the banner once every port answers -----------------------------------------------
        devstack.start()
        banner = await devstack.banner()
        serving_now = [await serving(port) for port in grpc_ports]
        metrics_now = [await asyncio.to_thread(metrics_answer, port) for port in metrics_ports]
        assert serving_now == [True] * 4, f"gRPC health at the banner: {serving_now}\n{devstack.output}"
        assert metrics_now == [True] * 5, f"metrics at the banner: {metrics_now}\n{devstack.output}"
        assert answers(smtp_port), "the mail catcher listens"
        text = "\n".join(banner)
        assert f"localhost:{env['ROLLCALL_IDENTITY_PORT']}" in text
        assert f"localhost:{env['ROLLCALL_IMPORT_PORT']}" in text
        assert f"{devstack.mail_dir}/" in text and "caught by devstack" in text
        assert DEV_TOKENS["admin"] in text and DEV_TOKENS["platform"] in text
        assert f"exchange {prefix}.events" in text
        children = devstack.children()
        assert len(children) == 5, f"identity, import, courier, two relays: {children}"

        # --- a sign-up: its "waiting" mail is a .eml file in the mail folder ------------------------
        async with grpc.aio.insecure_channel(env["ROLLCALL_IDENTITY_ADDR"]) as channel:
            identity = ipb_grpc.IdentityServiceStub(channel)
            school = await school_and_staff(identity)
            await identity.SignUpStudent(
                ipb.SignUpStudentRequest(
                    school_id=school.id,
                    email="Ann.Lee@Gmail.com",
                    first_name="Ann",
                    last_name="Lee",
                    password="correct horse battery",
                ),
                metadata=PLATFORM,
                timeout=60,
            )
            mail = await waiting_mail(devstack.mail_dir, "Ann.Lee@gmail.com")
            assert f"{mail}" in devstack.output, "the catcher says where each mail went"
            # the README story cannot be walked twice on the same databases
            with pytest.raises(grpc.aio.AioRpcError) as again:
                await school_and_staff(identity)
            assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS  # EMAIL_TAKEN: careers@uni.edu

        # --- Ctrl-C: a clean exit, nothing left -----------------------------------------------------
        assert await devstack.stop(signal.SIGINT) == 0, devstack.output
        assert "rollcall stopped." in devstack.output
        live = {pid for pid, _, _ in processes()}
        assert live.isdisjoint(children), f"children still running: {live & set(children)}"
        assert [pid for pid, _, group in processes() if group == devstack.process.pid] == []  # type: ignore[union-attr]
        assert [port for port in (*grpc_ports, *metrics_ports, smtp_port) if answers(port)] == []

        # --- reset: databases, topology and mail gone ------------------------------------------------
        assert await databases(pg_server_url, names) == set(names)
        assert await topology_left(amqp_url, prefix) != []
        reset = await asyncio.to_thread(devstack.reset)
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert (
            f"dropped database {names[0]}" in reset.stdout and f"dropped database {names[1]}" in reset.stdout
        )
        assert await databases(pg_server_url, names) == set()
        assert await topology_left(amqp_url, prefix) == []
        assert list(devstack.mail_dir.glob("*.eml")) == []

        # --- run again: the story starts afresh -------------------------------------------------------
        devstack.start()
        await devstack.banner()
        async with grpc.aio.insecure_channel(env["ROLLCALL_IDENTITY_ADDR"]) as channel:
            await school_and_staff(ipb_grpc.IdentityServiceStub(channel))
        children = devstack.children()
        assert await devstack.stop(signal.SIGTERM) == 0, devstack.output
        assert {pid for pid, _, _ in processes()}.isdisjoint(children)
        assert [port for port in (*grpc_ports, *metrics_ports, smtp_port) if answers(port)] == []
    finally:
        devstack.kill()
        await asyncio.to_thread(devstack.reset)
    assert await databases(pg_server_url, names) == set()
