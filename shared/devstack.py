"""``make run`` and ``make reset``: the development stack in the foreground, and a clean slate.

``python -m shared.devstack run [--mail-dir DIR]`` migrates both databases, then runs identity,
import, the courier and both events relays, each as its own process through the same console
scripts an SRE uses (``identity-service migrate|serve|courier|relay``, ``import-service
migrate|serve|relay``), with development tokens unless ``ROLLCALL_TOKENS`` (or ``_TOKENS_FILE``) is
set. When nothing answers on the SMTP port (``ROLLCALL_SMTP_HOST``/``_PORT``, a local host) it starts
a mail catcher there (aiosmtpd, a dev dependency) that writes each mail as an ``.eml`` file into the
mail folder (default ``.devstack/mail/`` under the current directory); the courier then sends
without STARTTLS or a login. The banner (ports, tokens, mail folder) is printed only once every
service answers: gRPC health SERVING on identity's, import's and both relays' ports, every metrics
port, the courier's process up. Ctrl-C (or SIGTERM) stops everything gracefully, exit 0.

``python -m shared.devstack reset [--mail-dir DIR]`` drops the databases the settings name
(``ROLLCALL_IDENTITY_DATABASE_URL``, ``ROLLCALL_IMPORT_DATABASE_URL``), deletes the broker's queues
and exchanges under ``ROLLCALL_AMQP_PREFIX`` and the caught mail, without asking: the next ``run``
starts from empty databases. It refuses with ``ROLLCALL_ENV=prod`` and while the stack answers.

Every name comes from the ``ROLLCALL_*`` settings, so a private stack (tests, a second checkout)
is the same commands with its own prefix, database URLs and ports in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.settings import Environment, Settings, load_settings

DEV_TOKENS = {
    "admin": "dev-admin-token-0001",
    "platform": "dev-platform-token-01",
    "importer": "dev-importer-token-1",
}
BIN = Path(sys.executable).parent
DEFAULT_MAIL_DIR = Path(".devstack/mail")
READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
# hosts the mail catcher may listen on in place of a missing mail server (what each binds to)
LOCAL_SMTP_HOSTS = {"localhost": "127.0.0.1", "127.0.0.1": "127.0.0.1", "::1": "::1"}


def dev_environment() -> dict[str, str]:
    env = dict(os.environ)
    if not _custom_tokens():
        env["ROLLCALL_TOKENS"] = ",".join(
            f"{'web' if role == 'platform' else role}:{role}:{token}" for role, token in DEV_TOKENS.items()
        )
        env.setdefault("ROLLCALL_IMPORT_TOKEN", DEV_TOKENS["importer"])
    # the dev broker's one user publishes for every school (the CLI sets user_id to it)
    env.setdefault("ROLLCALL_CONNECTORS", "guest:*")
    return env


def _custom_tokens() -> bool:
    return bool(os.environ.get("ROLLCALL_TOKENS") or os.environ.get("ROLLCALL_TOKENS_FILE"))


def _settings(env: dict[str, str]) -> Settings:
    """The settings the services will read from ``env`` (a bad value stops here, naming it)."""
    previous = dict(os.environ)
    os.environ.update(env)
    try:
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(previous)


# --- the services and their ports ---------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    name: str
    command: tuple[str, ...]
    grpc_port: int | None  # gRPC health answers here (None: the courier has none)
    metrics_port: int  # 0: off


def services(settings: Settings) -> list[Service]:
    return [
        Service(
            "identity",
            ("identity-service", "serve"),
            settings.identity_port,
            settings.identity_metrics_port,
        ),
        Service("import", ("import-service", "serve"), settings.import_port, settings.import_metrics_port),
        Service("courier", ("identity-service", "courier"), None, settings.courier_metrics_port),
        Service(
            "identity relay",
            ("identity-service", "relay"),
            settings.relay_health_port,
            settings.relay_metrics_port,
        ),
        Service(
            "import relay",
            ("import-service", "relay"),
            settings.import_relay_health_port,
            settings.import_relay_metrics_port,
        ),
    ]


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout):
            return True
    except OSError:
        return False


def _grpc_serving(port: int, tls: bool) -> bool:
    """Overall gRPC health SERVING on the port (with TLS on, that the port accepts connections)."""
    if tls:
        return _answers("127.0.0.1", port)
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _metrics_answer(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _waiting_for(service: Service, tls: bool) -> list[str]:
    """What of the service does not answer yet (empty: it is up)."""
    missing = []
    if service.grpc_port is not None and not _grpc_serving(service.grpc_port, tls):
        missing.append(f"grpc health :{service.grpc_port} not SERVING")
    if service.metrics_port and not _metrics_answer(service.metrics_port):
        missing.append(f"metrics :{service.metrics_port}")
    return missing


def _ports_taken(settings: Settings) -> list[str]:
    taken = []
    for service in services(settings):
        for kind, port in (("grpc", service.grpc_port), ("metrics", service.metrics_port)):
            if port and _answers("127.0.0.1", port, 0.5):
                taken.append(f"{service.name} {kind} :{port}")
    return taken


# --- the mail catcher -----------------------------------------------------------------------------


class MailFolder:
    """An aiosmtpd handler writing each mail it accepts as ``<time>-<n>.eml`` into ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.folder / f"{stamp}-{self.count:04d}.eml"
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(envelope.original_content or envelope.content or b"")
        partial.replace(path)  # readers never see half a mail
        print(f"mail catcher: {', '.join(envelope.rcpt_tos)} → {path}", flush=True)
        return "250 Message accepted for delivery"


def prepare_mail_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if folder.parent.name == ".devstack" and not (folder.parent / ".gitignore").exists():
        (folder.parent / ".gitignore").write_text("*\n")  # dev state, never committed


@dataclass(frozen=True)
class Mail:
    banner: str  # the banner's mail line
    caught: bool  # devstack's catcher receives the mail


@contextlib.contextmanager
def mail_catcher(settings: Settings, folder: Path) -> Iterator[Mail]:
    """Starts a catcher on the SMTP port when nothing answers there (a local host) while the block runs."""
    host, port = settings.smtp_host, settings.smtp_port
    if _answers(host, port):
        yield Mail(
            f"a mail server already answers on smtp {host}:{port}: the courier sends there", caught=False
        )
        return
    bind = LOCAL_SMTP_HOSTS.get(host.lower())
    if bind is None:
        yield Mail(
            f"NOTHING ANSWERS on smtp {host}:{port} (not local: no catcher); the courier retries",
            caught=False,
        )
        return
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        raise SystemExit(
            f"nothing answers on smtp {host}:{port} and aiosmtpd is missing for a mail catcher: "
            "pip install -e '.[dev]' (or start a mail server there)"
        ) from None
    prepare_mail_folder(folder)
    controller = Controller(MailFolder(folder), hostname=bind, port=port)
    controller.start()
    try:
        yield Mail(f"caught by devstack on smtp {host}:{port}: each mail a .eml file in {folder}/", True)
    finally:
        controller.stop()


# --- run ------------------------------------------------------------------------------------------


def _run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([str(BIN / args[0]), *args[1:]], env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {result.returncode})")


def _banner(settings: Settings, mail: str, custom_tokens: bool) -> str:
    admin = "<from ROLLCALL_TOKENS>" if custom_tokens else DEV_TOKENS["admin"]
    platform = "<from ROLLCALL_TOKENS>" if custom_tokens else DEV_TOKENS["platform"]
    s = settings
    return "\n".join(
        [
            "rollcall is running:",
            f"  identity  grpc localhost:{s.identity_port}   metrics :{s.identity_metrics_port}",
            f"  import    grpc localhost:{s.import_port}   metrics :{s.import_metrics_port}",
            f"  courier   smtp {s.smtp_host}:{s.smtp_port}   metrics :{s.courier_metrics_port}",
            f"  mail      {mail}",
            f"  relays    publish events to exchange {s.amqp_prefix}.events (docs/events.md)",
            f"            identity health :{s.relay_health_port} metrics :{s.relay_metrics_port}"
            f"   import health :{s.import_relay_health_port} metrics :{s.import_relay_metrics_port}",
            f"  dev admin token:    {admin}",
            f"  dev platform token: {platform}",
            f"  try: grpcurl -plaintext -H 'authorization: Bearer {admin}' localhost:{s.identity_port} list",
            "  Ctrl-C stops everything (then `make reset` drops the dev databases, to start afresh).",
        ]
    )


def run(mail_dir: Path = DEFAULT_MAIL_DIR) -> None:
    custom_tokens = _custom_tokens()
    env = dev_environment()
    settings = _settings(env)
    unset = [s.name for s in services(settings) if s.grpc_port == 0]
    if unset:
        raise SystemExit(f"make run needs fixed gRPC (health) ports, not 0: {', '.join(unset)}")
    taken = _ports_taken(settings)
    if taken:
        raise SystemExit(
            f"already in use: {', '.join(taken)} — another `make run`? Stop it, or set the ROLLCALL_*_PORT"
        )
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for command in (["identity-service", "migrate"], ["import-service", "migrate"]):
        _run(command, env)
        if stop:
            return
    with mail_catcher(settings, mail_dir) as mail:
        if mail.caught:  # the catcher speaks plain SMTP without logins
            env = {
                **env,
                "ROLLCALL_SMTP_STARTTLS": "false",
                "ROLLCALL_SMTP_USERNAME": "",
                "ROLLCALL_SMTP_PASSWORD": "",
            }
        stack = services(settings)
        children: list[subprocess.Popen[bytes]] = []
        ready = False
        try:
            for service in stack:
                children.append(
                    subprocess.Popen([str(BIN / service.command[0]), *service.command[1:]], env=env)
                )
            ready = _wait_ready(stack, children, settings, lambda: stop)
            if ready:
                print(_banner(settings, mail.banner, custom_tokens), flush=True)
                while not stop and all(child.poll() is None for child in children):
                    time.sleep(0.5)
        finally:
            _stop_all(children)
    exited = [
        s for s, child in zip(stack, children, strict=True) if child.returncode not in (0, -signal.SIGTERM)
    ]
    if not stop:
        if not ready:
            raise SystemExit("make run: stopped before everything answered (above: what did not)")
        if exited:
            raise SystemExit(f"stopped because {' '.join(exited[0].command)} exited")
    print("rollcall stopped.", flush=True)


def _wait_ready(
    stack: list[Service], children: list[subprocess.Popen[bytes]], settings: Settings, stopped: Any
) -> bool:
    """True once every service answers; False when stopped, one exits or the time is up (said why)."""
    tls = settings.tls_cert is not None
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    pending = dict(zip((s.name for s in stack), stack, strict=True))
    missing: dict[str, list[str]] = {}
    while pending:
        if stopped():
            return False
        for service, child in zip(stack, children, strict=True):
            if child.poll() is not None:
                print(f"make run: {' '.join(service.command)} exited ({child.returncode})", flush=True)
                return False
        for name, service in list(pending.items()):
            missing[name] = _waiting_for(service, tls)
            if not missing[name]:
                del pending[name]
        if pending and time.monotonic() > deadline:
            late = "; ".join(f"{name}: {', '.join(missing[name])}" for name in pending)
            print(f"make run: not answering after {READY_TIMEOUT_SECONDS:.0f} s — {late}", flush=True)
            return False
        if pending:
            time.sleep(0.25)
    return True


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# --- reset ----------------------------------------------------------------------------------------


def reset(mail_dir: Path = DEFAULT_MAIL_DIR) -> None:
    settings = _settings(dev_environment())
    if settings.env is Environment.PROD:
        raise SystemExit("make reset drops databases: refused with ROLLCALL_ENV=prod")
    running = [
        f":{port}" for port in (settings.identity_port, settings.import_port) if _answers("127.0.0.1", port)
    ]
    if running:
        raise SystemExit(f"something answers on {', '.join(running)}: stop `make run` first, then reset")
    try:
        asyncio.run(_drop_databases(settings))
    except (TimeoutError, OSError) as exc:
        raise SystemExit(
            f"PostgreSQL does not answer ({type(exc).__name__}: {exc}): nothing dropped"
        ) from None
    try:
        asyncio.run(_delete_topology(settings))
    except (TimeoutError, OSError) as exc:
        raise SystemExit(f"RabbitMQ does not answer ({type(exc).__name__}): the topology is left") from None
    mails = sorted(mail_dir.glob("*.eml")) if mail_dir.is_dir() else []
    for mail in mails:
        mail.unlink()
    print(f"deleted {len(mails)} caught mail(s) in {mail_dir}/")
    print("reset done: `make run` creates and migrates the databases again")


async def _drop_databases(settings: Settings) -> None:
    import asyncpg

    from shared import pg

    for url in (settings.identity_database_url, settings.import_database_url):
        name = pg.database_name(url)
        if not re.fullmatch(r"[A-Za-z0-9_]{1,63}", name):
            raise SystemExit(f"database name {name!r} must be letters, digits and underscores")
        conn = await asyncpg.connect(pg.with_database(url, "postgres"), timeout=10)
        try:
            existed = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        print(f"dropped database {name}" if existed else f"database {name}: none to drop")


async def _delete_topology(settings: Settings) -> None:
    """Deletes the prefix's queues and exchanges (each looked up first, so absent ones are said)."""
    from aio_pika.exceptions import ChannelClosed

    from identity_service.adapters.amqp.job_events import notifications_queue
    from shared.amqp.topology import Topology

    topology = Topology(settings.amqp_prefix)
    queues = (topology.rows_queue, topology.dead_queue, notifications_queue(topology))
    exchanges = (topology.exchange, topology.dead_exchange, topology.events_exchange)
    from shared.amqp.connect import connect_robust_any

    connection = await connect_robust_any(settings.amqp_urls, timeout=10)
    async with connection:
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in names:
                channel = await connection.channel()
                try:
                    if kind == "queue":
                        await channel.declare_queue(name, passive=True)
                        await channel.queue_delete(name)
                    else:
                        await channel.declare_exchange(name, passive=True)
                        await channel.exchange_delete(name)
                except ChannelClosed:  # passive look-up: not there
                    print(f"{kind} {name}: none to delete")
                    continue
                print(f"deleted {kind} {name}")
                await channel.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m shared.devstack", description="make run / make reset: the development stack"
    )
    parser.add_argument("command", choices=("run", "reset"))
    parser.add_argument(
        "--mail-dir",
        type=Path,
        default=DEFAULT_MAIL_DIR,
        help="where the mail catcher writes each mail as a .eml file (default: .devstack/mail)",
    )
    args = parser.parse_args(argv)
    (run if args.command == "run" else reset)(args.mail_dir)


if __name__ == "__main__":
    main()
