"""``make image-smoke``: build every image of deploy/Dockerfile and run it the way production does
(operations.md F10), against this machine's PostgreSQL and RabbitMQ.

1. A container engine: a Docker client that builds with BuildKit (Debian's ``docker.io`` has it built
   in; a newer client needs the buildx plugin) and a daemon that answers. Missing ones are installed
   with apt-get (``docker.io``, as root) and a daemon is started with no bridge, no iptables rules
   and IP forwarding left off (every container here uses the host's network, so the machine's
   firewall, addresses and sysctls stay untouched), and stopped again at the end.
2. The base image ``python:3.11-slim``: pulled when a registry answers; otherwise a stand-in of the
   same name, built once with debootstrap (Debian bookworm's Python 3.11 in a venv at /usr/local,
   the official image's layout, trusting the host's CA certificates so pip inside the build trusts
   what the host trusts) and labelled ``org.rollcall.stand-in``. It stays in the engine's image store
   (and the .debs in the cache folder), so later runs reuse it; a stand-in is replaced as soon as a
   pull succeeds.
3. Each target (identity, import) built with BuildKit; the build cache and pip's cache mount persist
   in the engine between runs.
4. Private databases ``rcsmoke_<id>_identity`` / ``_import`` and AMQP prefix ``rcsmoke_<id>``: both
   migrations, then identity ``serve``, ``courier`` and ``relay`` and import ``serve`` and ``relay``,
   each with ``--network host --read-only --tmpfs /tmp --cap-drop ALL --security-opt
   no-new-privileges`` (what deploy/k8s asks of every pod), on free ports. Checked: gRPC health
   SERVING (servers and relays), /metrics of all five, an unauthenticated call refused and
   authenticated calls answered (CreateSchool, SignUpStudent, SubmitFile of a 2-row CSV that the
   import consumer applies through identity, COMPLETED), the courier delivering the sign-up mail to
   an SMTP sink here, the identity relay publishing events, every process running as uid 10001
   (not root) on a read-only root file system, and SIGTERM ending each with exit code 0. Each image's
   size is printed. Containers, databases and queues are removed at the end, pass or fail.

Settings (environment): ``ROLLCALL_TEST_DATABASE_URL`` / ``ROLLCALL_TEST_AMQP_URL`` (default: the
local PostgreSQL and RabbitMQ), ``ROLLCALL_SMOKE_CACHE`` (default /var/cache/rollcall-image-smoke),
``ROLLCALL_DEBIAN_MIRROR`` (default http://deb.debian.org/debian), ``ROLLCALL_DOCKER`` (a client
to use). ``--keep`` leaves the containers (stopped) for ``docker logs``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import getpass
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
BASE_IMAGE = "python:3.11-slim"
TARGETS = ("identity", "import")
IMAGE_TAG = "smoke"
STAND_IN_LABEL = "org.rollcall.stand-in"
SMOKE_LABEL = "org.rollcall.image-smoke"
DEBIAN_SUITE = "bookworm"  # Debian 12: Python 3.11, like the official image's tag
STAND_IN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Removed from the stand-in's root file system: what the official slim images leave out too.
STAND_IN_TRIM = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/log",
)
IMAGE_UID = 10001  # deploy/Dockerfile's USER, and runAsUser in deploy/k8s
# What every container runs with: the k8s securityContext (readOnlyRootFilesystem, drop ALL,
# allowPrivilegeEscalation false) and its emptyDir on /tmp.
HARDENING = (
    "--network",
    "host",
    "--read-only",
    "--tmpfs",
    "/tmp:rw,nosuid,nodev,size=64m",  # noqa: S108 - the container's own /tmp, a tmpfs
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
)
# Test tokens of these throwaway containers only.
ADMIN_TOKEN = "smoke-admin-token-0123456789"  # noqa: S105
PLATFORM_TOKEN = "smoke-platform-token-012345"  # noqa: S105
IMPORTER_TOKEN = "smoke-importer-token-012345"  # noqa: S105
TOKENS = f"ops:admin:{ADMIN_TOKEN},web:platform:{PLATFORM_TOKEN},importer:importer:{IMPORTER_TOKEN}"
ADMIN_MD = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
PLATFORM_MD = (("authorization", f"Bearer {PLATFORM_TOKEN}"),)
# The daemon this script starts leaves the machine's network as it was: no bridge, no iptables rules
# or NAT, IP forwarding not switched on (every container here uses the host's network).
DOCKERD_FLAGS = ("--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none")
STOP_TIMEOUT = 40.0  # below terminationGracePeriodSeconds (45) in deploy/k8s
START = time.monotonic()


class SmokeError(Exception):
    """A check failed: the message says which and why."""


def say(message: str) -> None:
    print(f"[image-smoke {time.monotonic() - START:6.1f}s] {message}", flush=True)


def run(
    argv: Sequence[str],
    *,
    timeout: float = 600,
    check: bool = True,
    env: dict[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stderr: int = subprocess.PIPE,
) -> str:
    """Runs a command; its stdout (stderr included in the error when it fails)."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired as error:
        raise SmokeError(f"{' '.join(argv[:4])}...: no answer in {timeout:.0f} s") from error
    if check and done.returncode != 0:
        output = done.stdout + (done.stderr or "")
        shown = " ".join(argv) if len(argv) <= 8 else " ".join([*argv[:3], "...", *argv[-2:]])
        raise SmokeError(f"{shown} exited {done.returncode}:\n{output.strip()[-3000:]}")
    return str(done.stdout)


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise SmokeError(f"{name} is not on PATH")
    return found


def succeeds(argv: Sequence[str], timeout: float = 30) -> bool:
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def human_size(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def container_url(url: str, user: str) -> str:
    """``url`` with ``user`` filled in when it names none: the image's uid has no passwd entry, so
    the client library cannot take the login user's name as a host process would."""
    parts = urlsplit(url)
    if parts.username:
        return url
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc}"))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def root_is_read_only(mountinfo: str) -> bool:
    """Whether /proc/self/mountinfo says the root file system (mount point /) is mounted read-only."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[4] == "/":
            return "ro" in fields[5].split(",")
    return False


def stand_in_changes(python_version: str) -> list[str]:
    """``docker import --change`` lines giving the stand-in the official image's settings."""
    return [
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"ENV PYTHON_VERSION={python_version}",
        f'LABEL {STAND_IN_LABEL}="debootstrap {DEBIAN_SUITE}, python {python_version}"',
        'CMD ["python3"]',
    ]


# --- the engine --------------------------------------------------------------------------------------


@dataclass
class Engine:
    client: str
    cache: Path
    started: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, "DOCKER_BUILDKIT": "1"})

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        return run([self.client, *args], timeout=timeout, check=check, env=self.env)

    def ok(self, *args: str, timeout: float = 30) -> bool:
        try:
            self(*args, timeout=timeout)
        except SmokeError:
            return False
        return True

    def stop_daemon(self) -> None:
        if self.started is None or self.started.poll() is not None:
            return
        say(f"stopping the dockerd this run started (pid {self.started.pid})")
        self.started.send_signal(signal.SIGTERM)
        try:
            self.started.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait(timeout=10)


def builds_with_buildkit(client: str) -> bool:
    """A client whose ``docker build`` uses BuildKit: with the buildx plugin, or one older than 23
    (Docker 20.10-22, as Debian 12 ships) whose classic builder runs BuildKit with DOCKER_BUILDKIT=1.
    A client of 23+ without buildx refuses BuildKit builds."""
    if succeeds([client, "buildx", "version"]):
        return True
    try:
        version = run([client, "version", "--format", "{{.Client.Version}}"], timeout=30, check=False)
    except (OSError, SmokeError):
        return False
    major = version.strip().split(".", 1)[0]
    return major.isdigit() and int(major) < 23


def find_client() -> str | None:
    override = os.environ.get("ROLLCALL_DOCKER")
    candidates = [override] if override else ["/usr/bin/docker", shutil.which("docker") or ""]
    for client in dict.fromkeys(c for c in candidates if c):
        if Path(client).is_file() and builds_with_buildkit(client):
            return client
    return None


def apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise SmokeError(f"{', '.join(packages)} missing, and only root can apt-get install them")
    say(f"apt-get install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if not succeeds(install, timeout=900):
        run(["apt-get", "update", "-q"], timeout=600, env=env)
        run(install, timeout=900, env=env)


def ensure_engine(cache: Path) -> Engine:
    client = find_client()
    if client is None or not shutil.which("dockerd"):
        apt_install("docker.io")
        client = find_client()
        if client is None:
            raise SmokeError("docker.io is installed but no Docker client here builds with BuildKit")
    engine = Engine(client, cache)
    if engine.ok("info", timeout=20):
        say(
            f"engine: {client} (client {engine('version', '--format', '{{.Client.Version}}').strip()}), "
            "a daemon already running"
        )
        return engine
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    log = cache / "dockerd.log"
    say(f"starting {dockerd} (log {log})")
    with log.open("ab") as out:
        engine.started = subprocess.Popen(
            [dockerd, *DOCKERD_FLAGS],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while not engine.ok("info", timeout=10):
        if engine.started.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").splitlines()[-20:]
            raise SmokeError("dockerd did not come up:\n" + "\n".join(tail))
        time.sleep(0.5)
    say(f"engine: {client}, dockerd {engine('version', '--format', '{{.Server.Version}}').strip()}")
    return engine


# --- the base image ----------------------------------------------------------------------------------


def image_labels(engine: Engine, image: str) -> dict[str, str] | None:
    """The image's labels, or None when the engine does not have it."""
    if not engine.ok("image", "inspect", image, timeout=30):
        return None
    raw = engine("image", "inspect", "--format", "{{json .Config.Labels}}", image).strip()
    return json.loads(raw) or {}


def ensure_base(engine: Engine) -> str:
    labels = image_labels(engine, BASE_IMAGE)
    if labels is not None and STAND_IN_LABEL not in labels:
        return f"{BASE_IMAGE} (the engine's own copy)"
    if engine.ok("pull", "-q", BASE_IMAGE, timeout=120):
        return f"{BASE_IMAGE} (pulled)"
    if labels is not None:
        return f"{BASE_IMAGE}: stand-in, {labels[STAND_IN_LABEL]} (no registry answers; reused)"
    say(f"{BASE_IMAGE} cannot be pulled: building a stand-in with debootstrap")
    build_stand_in(engine)
    return f"{BASE_IMAGE}: stand-in, built now (no registry answers)"


def build_stand_in(engine: Engine) -> None:
    if not shutil.which("debootstrap"):
        apt_install("debootstrap")
    mirror = os.environ.get("ROLLCALL_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    debs = engine.cache / "debootstrap"
    debs.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="stand-in-", dir=engine.cache))
    try:
        started = time.monotonic()
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(STAND_IN_PACKAGES)}",
                f"--cache-dir={debs}",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            timeout=900,
        )
        say(f"debootstrap {DEBIAN_SUITE}: {time.monotonic() - started:.0f} s")
        # The official image's layout: python, python3 and pip in /usr/local/bin, packages in
        # /usr/local/lib/python3.11/site-packages.
        run(["chroot", str(rootfs), "python3", "-m", "venv", "/usr/local"])
        for script in (rootfs / "usr/local/bin").glob("[aA]ctivate*"):
            script.unlink()
        trust_host_certificates(rootfs)
        for part in STAND_IN_TRIM:
            folder = rootfs / part
            if folder.is_dir():
                for child in folder.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
        version = run(
            [
                "chroot",
                str(rootfs),
                "/usr/local/bin/python",
                "-c",
                "import platform;print(platform.python_version())",
            ]
        ).strip()
        changes = [arg for change in stand_in_changes(version) for arg in ("--change", change)]
        tar = subprocess.Popen(
            [tool("tar"), "--numeric-owner", "-C", str(rootfs), "-cf", "-", "."], stdout=subprocess.PIPE
        )
        try:
            run([engine.client, "import", *changes, "-", BASE_IMAGE], stdin=tar.stdout, env=engine.env)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
        size = int(engine("image", "inspect", "--format", "{{.Size}}", BASE_IMAGE).strip())
        say(f"stand-in {BASE_IMAGE}: Debian {DEBIAN_SUITE}, Python {version}, {human_size(size)}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def trust_host_certificates(rootfs: Path) -> None:
    """The certificates the host added (/usr/local/share/ca-certificates) join the stand-in's store,
    and its bundle becomes the host's: pip inside a build then trusts exactly what pip here trusts."""
    local = Path("/usr/local/share/ca-certificates")
    if local.is_dir():
        shutil.copytree(local, rootfs / "usr/local/share/ca-certificates", dirs_exist_ok=True)
    run(["chroot", str(rootfs), "update-ca-certificates"])
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        shutil.copyfile(bundle, rootfs / "etc/ssl/certs/ca-certificates.crt")


# --- the images --------------------------------------------------------------------------------------


def image_name(target: str) -> str:
    return f"rollcall-{target}:{IMAGE_TAG}"


def build(engine: Engine, target: str, logs: Path) -> float:
    started = time.monotonic()
    log = logs / f"build-{target}.log"
    argv = [
        engine.client,
        "build",
        "--network",
        "host",  # RUN steps (pip) reach the index the way the host does; no bridge needed
        "--progress",
        "plain",
        "-f",
        str(DOCKERFILE),
        "--target",
        target,
        "-t",
        image_name(target),
        str(ROOT),
    ]
    with log.open("w") as out:
        done = subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, env=engine.env, timeout=1200, check=False
        )
    text = log.read_text(errors="replace")
    if done.returncode != 0:
        raise SmokeError(f"docker build --target {target} failed:\n" + "\n".join(text.splitlines()[-60:]))
    seconds = time.monotonic() - started
    cached = text.count(" CACHED")
    say(f"built {image_name(target)} in {seconds:.1f} s ({cached} steps from the build cache)")
    return seconds


# --- running them ------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str  # identity, courier, identity-relay, import, import-relay
    image: str
    command: str
    grpc_port: int | None  # gRPC health answers here (servers and relays)
    metrics_port: int
    container: str = ""


@dataclass
class Smoke:
    engine: Engine
    pg_url: str
    amqp_url: str
    tag: str = field(default_factory=lambda: f"rcsmoke_{uuid.uuid4().hex[:8]}")
    env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    smtp_messages: list[bytes] = field(default_factory=list)

    @property
    def databases(self) -> tuple[str, str]:
        return f"{self.tag}_identity", f"{self.tag}_import"

    def settings(self, smtp_port: int) -> None:
        user = getpass.getuser()
        pg = container_url(self.pg_url, user)
        identity_db, import_db = self.databases
        ports = {name: (free_port(), free_port()) for name in ("identity", "import", "ir", "mr")}
        self.env = {
            "ROLLCALL_ENV": "dev",
            "ROLLCALL_IDENTITY_DATABASE_URL": with_database(pg, identity_db),
            "ROLLCALL_IMPORT_DATABASE_URL": with_database(pg, import_db),
            "ROLLCALL_AMQP_URL": self.amqp_url,
            "ROLLCALL_AMQP_PREFIX": self.tag,
            "ROLLCALL_CONNECTORS": f"{urlsplit(self.amqp_url).username or 'guest'}:*",
            "ROLLCALL_IDENTITY_HOST": "127.0.0.1",
            "ROLLCALL_IDENTITY_PORT": str(ports["identity"][0]),
            "ROLLCALL_IDENTITY_METRICS_PORT": str(ports["identity"][1]),
            "ROLLCALL_IDENTITY_ADDR": f"127.0.0.1:{ports['identity'][0]}",
            "ROLLCALL_IMPORT_PORT": str(ports["import"][0]),
            "ROLLCALL_IMPORT_METRICS_PORT": str(ports["import"][1]),
            "ROLLCALL_COURIER_METRICS_PORT": str(free_port()),
            "ROLLCALL_RELAY_HEALTH_PORT": str(ports["ir"][0]),
            "ROLLCALL_RELAY_METRICS_PORT": str(ports["ir"][1]),
            "ROLLCALL_IMPORT_RELAY_HEALTH_PORT": str(ports["mr"][0]),
            "ROLLCALL_IMPORT_RELAY_METRICS_PORT": str(ports["mr"][1]),
            "ROLLCALL_TOKENS": TOKENS,
            "ROLLCALL_IMPORT_TOKEN": IMPORTER_TOKEN,
            "ROLLCALL_CODE_SECRET": "smoke-code-secret-0123456789abcdefgh",
            "ROLLCALL_SMTP_HOST": "127.0.0.1",
            "ROLLCALL_SMTP_PORT": str(smtp_port),
            "ROLLCALL_SMTP_STARTTLS": "false",
            "ROLLCALL_MAIL_FROM": "no-reply@smoke.rollcall.test",
            "ROLLCALL_SHUTDOWN_GRACE_SECONDS": "10",
        }
        identity, importer = image_name("identity"), image_name("import")
        e = self.env
        for service in (
            Service("identity", identity, "serve", ports["identity"][0], ports["identity"][1]),
            Service("courier", identity, "courier", None, int(e["ROLLCALL_COURIER_METRICS_PORT"])),
            Service("identity-relay", identity, "relay", ports["ir"][0], ports["ir"][1]),
            Service("import", importer, "serve", ports["import"][0], ports["import"][1]),
            Service("import-relay", importer, "relay", ports["mr"][0], ports["mr"][1]),
        ):
            service.container = f"{self.tag}-{service.name}"
            self.services[service.name] = service

    def docker_run(self, name: str, image: str, command: str, *, detach: bool) -> list[str]:
        env = [arg for key, value in sorted(self.env.items()) for arg in ("-e", f"{key}={value}")]
        mode = ["-d"] if detach else ["--rm"]
        return [
            self.engine.client,
            "run",
            *mode,
            "--name",
            name,
            "--label",
            f"{SMOKE_LABEL}={self.tag}",
            *HARDENING,
            *env,
            image,
            command,
        ]

    # --- steps ---

    def migrate(self) -> None:
        for target in TARGETS:
            started = time.monotonic()
            argv = self.docker_run(
                f"{self.tag}-{target}-migrate", image_name(target), "migrate", detach=False
            )
            run(argv, timeout=180, env=self.engine.env)
            say(
                f"{target} migrate: exit 0 in {time.monotonic() - started:.1f} s (database created, migrated)"
            )

    def start(self) -> None:
        for service in self.services.values():
            argv = self.docker_run(service.container, service.image, service.command, detach=True)
            run(argv, timeout=120, env=self.engine.env)

    def state(self, service: Service) -> dict[str, object]:
        raw = self.engine("inspect", "--format", "{{json .State}}", service.container).strip()
        state: dict[str, object] = json.loads(raw)
        return state

    def logs(self, service: Service, lines: int = 30) -> str:
        return run(
            [self.engine.client, "logs", "--tail", str(lines), service.container],
            check=False,
            env=self.engine.env,
            stderr=subprocess.STDOUT,
        )

    def failed(self, service: Service, why: str) -> SmokeError:
        return SmokeError(
            f"{service.name}: {why}\n--- docker logs {service.container} ---\n{self.logs(service)}"
        )

    def wait_serving(self) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        for service in self.services.values():
            deadline = time.monotonic() + 90
            last = "no answer"
            while True:
                if not self.state(service).get("Running"):
                    raise self.failed(service, f"exited with {self.state(service).get('ExitCode')}")
                if service.grpc_port is None:
                    break
                with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
                    try:
                        reply = health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(service=""), timeout=2
                        )
                        last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                    except grpc.RpcError as error:
                        last = error.code().name
                if last == "SERVING":
                    break
                if time.monotonic() > deadline:
                    raise self.failed(service, f"health not SERVING after 90 s (last: {last})")
                time.sleep(0.3)
            if service.grpc_port is not None:
                say(f"{service.name}: grpc.health.v1 SERVING on :{service.grpc_port}")

    def check_metrics(self) -> None:
        for service in self.services.values():
            url = f"http://127.0.0.1:{service.metrics_port}/metrics"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=5) as reply:
                        body = reply.read().decode()
                        status = reply.status
                    break
                except OSError as error:
                    if time.monotonic() > deadline:
                        raise self.failed(service, f"GET {url}: {error}") from None
                    time.sleep(0.3)
            families = sorted(
                {ln.split()[2] for ln in body.splitlines() if ln.startswith("# TYPE rollcall_")}
            )
            if status != 200 or not families:
                raise self.failed(service, f"GET {url}: {status}, no rollcall_ metrics")
            say(f"{service.name}: /metrics on :{service.metrics_port} ({len(families)} rollcall_ families)")

    def check_calls(self) -> None:
        import grpc

        from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
        from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as ipb_grpc
        from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
        from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
        from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc

        identity_addr = f"127.0.0.1:{self.env['ROLLCALL_IDENTITY_PORT']}"
        import_addr = f"127.0.0.1:{self.env['ROLLCALL_IMPORT_PORT']}"
        domain = f"{self.tag.replace('_', '-')}.example.edu"
        with grpc.insecure_channel(identity_addr) as ich, grpc.insecure_channel(import_addr) as mch:
            identity, importer = ipb_grpc.IdentityServiceStub(ich), pb_grpc.ImportServiceStub(mch)
            request = ipb.CreateSchoolRequest(name="Smoke University", email_domains=[domain])
            try:
                identity.CreateSchool(request, timeout=10)
                raise SmokeError("identity: CreateSchool without a token was answered")
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAUTHENTICATED:
                    raise SmokeError(f"identity: CreateSchool without a token: {error.code().name}") from None
            school = identity.CreateSchool(request, metadata=ADMIN_MD, timeout=10)
            say(
                "identity: CreateSchool without a token UNAUTHENTICATED; with the admin token: "
                f"school {school.id}"
            )
            student = identity.SignUpStudent(
                ipb.SignUpStudentRequest(
                    school_id=school.id,
                    email=f"ada@{domain}",
                    first_name="Ada",
                    last_name="Smoke",
                    password="smoke-password-0123",  # noqa: S106 - a throwaway test account
                ),
                metadata=PLATFORM_MD,
                timeout=30,
            )
            say(f"identity: SignUpStudent with the platform token: user {student.id} pending")
            rows = io.StringIO()
            writer = csv.writer(rows)
            writer.writerow(["username", "email_address", "first_name", "last_name"])
            writer.writerow(["smoke-1", f"one@{domain}", "One", "Smoke"])
            writer.writerow(["smoke-2", f"two@{domain}", "Two", "Smoke"])
            header = pb.FileHeader(
                school_id=school.id,
                mode=rows_pb.IMPORT_MODE_MANUAL_FILE,
                source_name="smoke.csv",
                format=pb.FILE_FORMAT_CSV,
            )
            upload = iter(
                [pb.SubmitFileRequest(header=header), pb.SubmitFileRequest(chunk=rows.getvalue().encode())]
            )
            job = importer.SubmitFile(upload, metadata=ADMIN_MD, timeout=30)
            deadline = time.monotonic() + 60
            while job.state != pb.IMPORT_JOB_STATE_COMPLETED:
                if time.monotonic() > deadline:
                    raise self.failed(
                        self.services["import"], f"job {job.job_id} not COMPLETED in 60 s: {job}"
                    )
                time.sleep(0.3)
                job = importer.GetImportJob(
                    pb.GetImportJobRequest(job_id=job.job_id), metadata=ADMIN_MD, timeout=10
                )
            if (job.total_rows, job.counts.created, job.counts.failed) != (2, 2, 0):
                raise SmokeError(f"import: job {job.job_id} completed as {job}")
            say(
                f"import: SubmitFile (admin token) job {job.job_id} COMPLETED, 2 rows created through "
                "RabbitMQ and identity's ApplyStudentRows"
            )

    def check_mail_and_events(self) -> None:
        deadline = time.monotonic() + 60
        while not any(b"ada@" in message for message in self.smtp_messages):
            if time.monotonic() > deadline:
                raise self.failed(
                    self.services["courier"], "the sign-up mail did not reach the SMTP sink in 60 s"
                )
            time.sleep(0.3)
        say(f"courier: delivered the sign-up mail to the SMTP sink ({len(self.smtp_messages)} mail(s))")
        relay = self.services["identity-relay"]
        while (published := self.metric(relay, "rollcall_events_published_total")) <= 0:
            if time.monotonic() > deadline:
                raise self.failed(relay, "rollcall_events_published_total still 0 after 60 s")
            time.sleep(0.3)
        say(f"identity-relay: {published:.0f} events published to {self.tag}.events")

    def metric(self, service: Service, name: str) -> float:
        url = f"http://127.0.0.1:{service.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        total = 0.0
        for line in text.splitlines():
            key = line.split(" ", 1)[0]
            if key == name or key.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def check_user_and_root(self) -> None:
        probe = (
            "import os;"
            "print(os.getuid(), os.getgid(), os.geteuid(), ','.join(map(str, os.getgroups())));"
            "print(open('/proc/self/mountinfo').read())"
        )
        for service in self.services.values():
            out = self.engine("exec", service.container, "python", "-c", probe, timeout=30)
            ids, _, mountinfo = out.partition("\n")
            uid, gid, euid, groups = [*ids.split(), ""][:4]
            if {uid, euid} != {str(IMAGE_UID)} or gid == "0" or "0" in groups.split(","):
                raise self.failed(
                    service, f"runs as uid {uid} gid {gid} groups {groups!r}: expected {IMAGE_UID}"
                )
            if not root_is_read_only(mountinfo):
                raise self.failed(service, "the root file system is writable")
            pid1 = self.engine("exec", service.container, "cat", "/proc/1/status", timeout=30)
            uid_line = next(line for line in pid1.splitlines() if line.startswith("Uid:"))
            if set(uid_line.split()[1:]) != {str(IMAGE_UID)}:
                raise self.failed(service, f"PID 1 {uid_line}")
        say(
            f"all {len(self.services)} processes: uid/gid {IMAGE_UID} (PID 1 too), root file system read-only"
        )

    def stop_all(self) -> None:
        """SIGTERM to every container at once, as a rollout does; each must exit 0 within the grace."""
        results: dict[str, tuple[str, float]] = {}

        def stop(service: Service) -> None:
            started = time.monotonic()
            self.engine("kill", "--signal", "TERM", service.container, timeout=30)
            code = self.engine("wait", service.container, timeout=STOP_TIMEOUT + 5).strip()
            results[service.name] = (code, time.monotonic() - started)

        threads = [threading.Thread(target=stop, args=(s,)) for s in self.services.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for service in self.services.values():
            code, seconds = results.get(service.name, ("?", 0.0))
            if code != "0":
                raise self.failed(service, f"SIGTERM: exit code {code}")
            if seconds > STOP_TIMEOUT:
                raise self.failed(service, f"SIGTERM: took {seconds:.1f} s")
        say("SIGTERM: " + ", ".join(f"{n} exit 0 in {s:.1f} s" for n, (_, s) in results.items()))

    # --- cleanup ---

    def remove_containers(self) -> None:
        ids = self.engine("ps", "-aq", "--filter", f"label={SMOKE_LABEL}={self.tag}", check=False).split()
        if ids:
            self.engine("rm", "-f", *ids, check=False, timeout=120)

    async def drop(self) -> None:
        import aio_pika
        import asyncpg

        from shared.amqp.topology import Topology

        conn = await asyncpg.connect(self.pg_url, timeout=10)
        try:
            for name in self.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        topology = Topology(self.tag)
        queues = (topology.rows_queue, topology.dead_queue, f"{self.tag}.identity.notifications")
        exchanges = (topology.exchange, topology.dead_exchange, topology.events_exchange)
        connection = await aio_pika.connect(self.amqp_url, timeout=10)
        async with connection:
            for queue in queues:
                with contextlib.suppress(Exception):
                    channel = await connection.channel()
                    await channel.queue_delete(queue)
            for exchange in exchanges:
                with contextlib.suppress(Exception):
                    channel = await connection.channel()
                    await channel.exchange_delete(exchange)


@contextlib.contextmanager
def smtp_sink(messages: list[bytes]) -> Iterator[int]:
    """An SMTP server on a free loopback port, keeping every message it accepts."""
    from aiosmtpd.controller import Controller

    class Keep:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            messages.append(bytes(getattr(envelope, "original_content", b"") or b""))
            return "250 OK"

    port = free_port()
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def service_urls() -> tuple[str, str]:
    pg = (
        os.environ.get("ROLLCALL_TEST_DATABASE_URL")
        or f"postgresql://{getpass.getuser()}@127.0.0.1:5432/postgres"
    )
    amqp = os.environ.get("ROLLCALL_TEST_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/"
    for url, default in ((pg, 5432), (amqp, 5672)):
        parts = urlsplit(url)
        try:
            socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default), 2).close()
        except OSError as error:
            raise SmokeError(
                f"nothing answers at {parts.hostname}:{parts.port or default} ({error})"
            ) from None
    return pg, amqp


def image_sizes(engine: Engine) -> None:
    base = int(engine("image", "inspect", "--format", "{{.Size}}", BASE_IMAGE).strip())
    for target in TARGETS:
        size = int(engine("image", "inspect", "--format", "{{.Size}}", image_name(target)).strip())
        user = engine("image", "inspect", "--format", "{{.Config.User}}", image_name(target)).strip()
        say(
            f"image {image_name(target)}: {human_size(size)} "
            f"({human_size(size - base)} over the base {BASE_IMAGE}, {human_size(base)}); USER {user}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="leave the stopped containers for docker logs")
    args = parser.parse_args(argv)
    cache = Path(os.environ.get("ROLLCALL_SMOKE_CACHE", "/var/cache/rollcall-image-smoke"))
    cache.mkdir(parents=True, exist_ok=True)
    engine: Engine | None = None
    smoke: Smoke | None = None
    try:
        pg, amqp = service_urls()
        engine = ensure_engine(cache)
        for stale in engine("ps", "-aq", "--filter", f"label={SMOKE_LABEL}", check=False).split():
            engine("rm", "-f", stale, check=False)
        say(f"base image: {ensure_base(engine)}")
        with tempfile.TemporaryDirectory(prefix="image-smoke-") as logs:
            for target in TARGETS:
                build(engine, target, Path(logs))
        image_sizes(engine)
        smoke = Smoke(engine, pg, amqp)
        say(
            f"running against {urlsplit(pg).netloc} and {urlsplit(amqp).hostname}: databases "
            f"{' and '.join(smoke.databases)}, prefix {smoke.tag}"
        )
        with smtp_sink(smoke.smtp_messages) as smtp_port:
            smoke.settings(smtp_port)
            smoke.migrate()
            smoke.start()
            smoke.wait_serving()
            smoke.check_metrics()
            smoke.check_calls()
            smoke.check_mail_and_events()
            smoke.check_user_and_root()
            smoke.stop_all()
        say(f"image smoke passed in {time.monotonic() - START:.0f} s")
        return 0
    except SmokeError as error:
        print(f"image-smoke FAILED: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        if smoke is not None:
            if not args.keep:
                smoke.remove_containers()
            import asyncio

            try:
                asyncio.run(smoke.drop())
            except Exception as error:  # cleanup must not hide the result
                print(f"image-smoke: cleanup of {smoke.tag}: {error}", file=sys.stderr)
        if engine is not None and not args.keep:
            engine.stop_daemon()


if __name__ == "__main__":
    sys.exit(main())
