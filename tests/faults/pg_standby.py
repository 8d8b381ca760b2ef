"""A PostgreSQL primary with a streaming standby, from this machine's server binaries (F8).

``pg_pair()`` initdb's a primary in a temporary directory (``wal_level=replica``, trust for local
connections and replication, sockets in the directory), starts it on a free port, takes
``pg_basebackup -R -X stream`` for a standby on another free port and starts it streaming
(synchronous: a commit returns once the standby has it). The
``PgPair`` it yields stops the primary (``stop_primary``, immediate: the host gone) and promotes
the standby (``promote_standby``); on exit both servers are stopped and the directories removed.
The old primary is never started again after a promotion (it would be a second primary).

The server refuses to run as root: as root, every server command runs as the ``postgres`` user
(``runuser``), and the temporary directory belongs to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.process_stack import eventually, free_port

SERVER_USER = "postgres"


def server_bindir() -> Path | None:
    """The folder of initdb / pg_ctl / pg_basebackup: ``pg_config --bindir``, else Debian's newest."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=False
        )
        folder = Path(done.stdout.strip())
        if done.returncode == 0 and (folder / "initdb").exists():
            return folder
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return debian[-1].parent if debian else None


def available() -> str | None:
    """None when a pair can be started here, else why not (a skip reason)."""
    if server_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no {SERVER_USER!r} user to run the servers as"
        if shutil.which("runuser") is None:
            return "running as root without runuser"
    return None


@dataclass
class PgPair:
    root: Path
    bindir: Path
    primary_port: int
    standby_port: int
    host: str = "127.0.0.1"
    user: str = SERVER_USER
    primary_running: bool = False
    standby_running: bool = False
    promoted: bool = False

    @property
    def primary_dir(self) -> Path:
        return self.root / "primary"

    @property
    def standby_dir(self) -> Path:
        return self.root / "standby"

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{port}/{database}"

    def multi_host_url(self, database: str = "postgres") -> str:
        """Both servers, the one accepting writes chosen at each connect (libpq's syntax)."""
        hosts = f"{self.host}:{self.primary_port},{self.host}:{self.standby_port}"
        return f"postgresql://{self.user}@{hosts}/{database}?target_session_attrs=read-write"

    # --- commands -------------------------------------------------------------------------------

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def _pg_ctl(self, data: Path, *args: str) -> None:
        self._run(
            "pg_ctl", "-D", str(data), "-l", str(data.parent / f"{data.name}.log"), "-w", "-t", "60", *args
        )

    def setup(self) -> None:
        self._run(
            "initdb", "-D", str(self.primary_dir), "-U", self.user, "-A", "trust", "--no-sync", "-E", "UTF8"
        )
        with (self.primary_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# F8's primary\n"
                f"port = {self.primary_port}\n"
                f"listen_addresses = '{self.host}'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "wal_level = replica\n"
                "max_wal_senders = 5\n"
                "wal_keep_size = '256MB'\n"
                "hot_standby = on\n"
                "max_connections = 100\n"
                "fsync = off\n"
                "synchronous_commit = on\n"
            )
        with (self.primary_dir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host replication {self.user} {self.host}/32 trust\nlocal replication all trust\n")
        self._pg_ctl(self.primary_dir, "start")
        self.primary_running = True
        self._run(
            "pg_basebackup", "-h", self.host, "-p", str(self.primary_port), "-U", self.user,
            "-D", str(self.standby_dir), "-R", "-X", "stream", "--no-sync",
        )  # fmt: skip
        with (self.standby_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"port = {self.standby_port}\n")
        self._pg_ctl(self.standby_dir, "start")
        self.standby_running = True

    async def make_synchronous(self, timeout: float = 60) -> None:
        """Commits on the primary wait for the standby (``synchronous_standby_names``, set on the
        primary alone, after the base backup: the promoted standby must not wait for a standby of
        its own). With asynchronous replication a commit not yet streamed when the primary stops
        is lost by design; F8 checks that rollcall loses nothing when the database loses nothing."""
        conn = await asyncpg.connect(self.url(self.primary_port), timeout=5)
        try:
            await conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

        async def synchronous() -> bool:
            conn = await asyncpg.connect(self.url(self.primary_port), timeout=5)
            try:
                row = await conn.fetchrow("SELECT state, sync_state FROM pg_stat_replication LIMIT 1")
            finally:
                await conn.close()
            return row is not None and (row["state"], row["sync_state"]) == ("streaming", "sync")

        await eventually(synchronous, timeout=timeout, what="the standby streaming, synchronous", every=0.2)

    async def stop_primary(self) -> None:
        """The primary gone at once (``-m immediate``: no shutdown checkpoint, clients cut)."""
        await asyncio.to_thread(self._pg_ctl, self.primary_dir, "stop", "-m", "immediate")
        self.primary_running = False

    async def promote_standby(self) -> float:
        """``pg_ctl promote``; waits until the standby accepts writes. Seconds it took."""
        began = time.monotonic()
        await asyncio.to_thread(self._pg_ctl, self.standby_dir, "promote")
        self.promoted = True

        async def writable() -> bool:
            conn = await asyncpg.connect(self.url(self.standby_port), timeout=5)
            try:
                return not await conn.fetchval("SELECT pg_is_in_recovery()")
            finally:
                await conn.close()

        await eventually(writable, timeout=60, what="the promoted standby accepting writes", every=0.1)
        return time.monotonic() - began

    def teardown(self) -> None:
        for running, data in (
            (self.standby_running, self.standby_dir),
            (self.primary_running, self.primary_dir),
        ):
            if running:
                with contextlib.suppress(Exception):
                    self._pg_ctl(data, "stop", "-m", "immediate")
        self.primary_running = self.standby_running = False
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.asynccontextmanager
async def pg_pair() -> AsyncIterator[PgPair]:
    bindir = server_bindir()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="rollcall_pgpair_"))
    if os.geteuid() == 0:
        server = pwd.getpwnam(SERVER_USER)
        os.chown(root, server.pw_uid, server.pw_gid)
    os.chmod(root, 0o700)
    pair = PgPair(root, bindir, free_port(), free_port())
    try:
        await asyncio.to_thread(pair.setup)
        await pair.make_synchronous()
        yield pair
    finally:
        await asyncio.to_thread(pair.teardown)
