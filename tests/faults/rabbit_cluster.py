"""A 3-node RabbitMQ cluster on this machine for fault test F7: three extra nodes of the installed
RabbitMQ, each on its own free ports with its own node name, data and logs under a temp dir, one
Erlang cookie, joined to the first. Nothing else is enabled (no plugins). The machine's own node
(``rabbit@localhost``, port 5672) is never touched: every ``rabbitmqctl`` here names its node.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path("/usr/lib/rabbitmq/bin")  # the scripts themselves: /usr/sbin's wrappers su to rabbitmq
START_TIMEOUT_SECONDS = 90


def available() -> bool:
    return (BIN / "rabbitmq-server").is_file() and (BIN / "rabbitmqctl").is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    name: str  # rc1_<token>@localhost
    port: int
    dist_port: int
    base: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"


@dataclass
class RabbitCluster:
    root: Path
    nodes: list[Node] = field(default_factory=list)

    def env(self, node: Node) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.root),  # the shared .erlang.cookie
            RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=node.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(node.port),
            RABBITMQ_DIST_PORT=str(node.dist_port),
            RABBITMQ_CONFIG_FILE=str(node.base / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(node.base / "advanced.config"),
            RABBITMQ_MNESIA_BASE=str(node.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(node.base / "log"),
            RABBITMQ_PID_FILE=str(node.base / "pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(node.base / "enabled_plugins"),
            RABBITMQ_ENABLED_PLUGINS="",
            RABBITMQ_PLUGINS_EXPAND_DIR=str(node.base / "plugins-expand"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            RABBITMQ_CTL_DIST_PORT_MIN="35672",
            RABBITMQ_CTL_DIST_PORT_MAX="35772",
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def ctl(self, node: Node, *args: str, tool: str = "rabbitmqctl", timeout: float = 60) -> str:
        done = subprocess.run(
            [str(BIN / tool), "-n", node.name, *args],
            env=self.env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} -n {node.name} {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def start(self, node: Node) -> None:
        """Starts the node (in the foreground, as our child) and waits until it is up."""
        log = (node.base / "server.out").open("ab")
        node.process = subprocess.Popen(
            [str(BIN / "rabbitmq-server")], env=self.env(node), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if node.process.poll() is not None:
                raise RuntimeError(f"{node.name} exited: {(node.base / 'server.out').read_text()[-2000:]}")
            try:
                self.ctl(node, "await_startup", "--timeout", "5", timeout=20)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self, node: Node) -> None:
        """Stops the node gracefully (``rabbitmqctl stop``), killing it only if that fails."""
        if node.process is None:
            return
        if node.process.poll() is None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.ctl(node, "stop", timeout=60)
            try:
                node.process.wait(30)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(10)
        node.process = None

    def quorum_leader(self, queue: str) -> Node:
        """The node that leads ``queue`` now (asked of any running node)."""
        for asked in self.nodes:
            if node_running(asked):
                out = self.ctl(asked, "list_queues", "name", "leader", "--quiet", "--no-table-headers")
                for line in out.splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == queue:
                        return self.by_name(parts[1])
                raise LookupError(f"{queue} not on the cluster: {out}")
        raise RuntimeError("no node running")

    def members(self, queue: str) -> list[str]:
        asked = next(n for n in self.nodes if node_running(n))
        out = self.ctl(asked, "list_queues", "name", "members", "--quiet", "--no-table-headers")
        for line in out.splitlines():
            name, _, rest = line.partition("\t")
            if name == queue:
                return [m.strip(" \t[]\"'") for m in rest.split(",") if m.strip(" \t[]\"'")]
        return []

    def connections(self, node: Node) -> int:
        """How many client connections ``node`` holds."""
        out = self.ctl(node, "list_connections", "name", "--quiet", "--no-table-headers")
        return len([line for line in out.splitlines() if line.strip()])

    def by_name(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def urls(self) -> str:
        return ",".join(n.url for n in self.nodes)


def broker_ports_of(pid: int, nodes: list[Node]) -> set[int]:
    """The AMQP ports of ``nodes`` that process ``pid`` holds established connections to (``ss``)."""
    ports = {n.port for n in nodes}
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    held = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5 or f"pid={pid}," not in line:
            continue
        peer = fields[3].rpartition(":")[2]
        if peer.isdigit() and int(peer) in ports:
            held.add(int(peer))
    return held


def node_running(node: Node) -> bool:
    return node.process is not None and node.process.poll() is None


@contextlib.contextmanager
def rabbit_cluster(size: int = 3) -> Iterator[RabbitCluster]:
    """``size`` nodes started and joined to the first; all stopped and their files removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="rollcall-rabbit-"))
    cluster = RabbitCluster(root)
    cookie = root / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(20))
    cookie.chmod(0o400)
    (root / "rabbitmq-env.conf").write_text("")
    token = secrets.token_hex(3)
    try:
        for i in range(1, size + 1):
            base = root / f"rc{i}"
            base.mkdir()
            node = Node(f"rc{i}_{token}@localhost", _free_port(), _free_port(), base)
            (base / "rabbitmq.conf").write_text(
                f"listeners.tcp.1 = 127.0.0.1:{node.port}\nloopback_users = none\n"
            )
            (base / "advanced.config").write_text("[].\n")
            (base / "enabled_plugins").write_text("[].\n")
            cluster.nodes.append(node)
        for node in cluster.nodes:
            cluster.start(node)
        first = cluster.nodes[0]
        for node in cluster.nodes[1:]:
            cluster.ctl(node, "stop_app")
            cluster.ctl(node, "join_cluster", first.name)
            cluster.ctl(node, "start_app")
            cluster.ctl(node, "await_startup")
        yield cluster
    finally:
        for node in reversed(cluster.nodes):
            with contextlib.suppress(Exception):
                cluster.stop(node)
        shutil.rmtree(root, ignore_errors=True)
