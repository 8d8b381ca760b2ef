"""The fault suite's tools: planned files whose every row has one known outcome, a checker that
counts every row's effect in both services, a publisher that outlives a broker restart, and the
hands that stop and start the broker and the database (always started again, even on failure)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg

from shared.amqp.publisher import amqp_user
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import Campus, connector, end_message, header, outcome_name, rows_message
from tests.infra import answers
from tests.process_stack import ProcessStack, eventually, job_counts

Expected = tuple[str, str]  # (outcome, reason)


# --- planned files --------------------------------------------------------------------------------


COUNT_NAMES = ("created", "updated", "unchanged", "skipped", "failed")


@dataclass
class PlannedFile:
    """Rows of one job and the one outcome each must end with, whatever happens on the way.

    ``repeated`` (when asked for) are groups of rows naming one new student, spread over the file:
    the highest row wins. Which of a group's rows CREATED the student depends on the order the rows
    reached identity, so those rows have no one planned outcome; ``check_repeated`` holds them to
    what any order must give instead.
    """

    job: pb.ImportMessage
    rows: list[rows_pb.StudentRow]
    expected: dict[int, Expected]
    existing: int  # students of the school before the job
    repeated: list[list[int]] = field(default_factory=list)  # row numbers, ascending, per student

    @property
    def job_id(self) -> str:
        return self.job.job_id

    def counts(self) -> dict[str, int]:
        """The counts of the rows with a planned outcome (every row unless ``repeated``)."""
        tally = Counter(outcome.lower() for outcome, _ in self.expected.values())
        return {**{name: tally.get(name, 0) for name in COUNT_NAMES}, "approved": 0}

    def messages(self, per_message: int = 100) -> list[pb.ImportMessage]:
        """The rows messages then the end message, as a connector sends them."""
        chunks = [
            rows_message(self.job, self.rows[start : start + per_message])
            for start in range(0, len(self.rows), per_message)
        ]
        return [*chunks, end_message(self.job, len(self.rows))]


async def plan_file(
    stack: ProcessStack, campus: Campus, total: int, existing: int = 400, repeated: int = 0
) -> PlannedFile:
    """``existing`` students loaded by an earlier job, then a ``total``-row file where every 100th
    row is invalid (FAILED), every 50th (from 7) names an existing student (half UPDATED with a new
    last name, half UNCHANGED) and the rest are new students (CREATED). No student is named twice,
    so each row's outcome is fixed: a row applied twice would come out UNCHANGED instead.

    ``repeated`` new students are then named by three rows each instead of one, a third of the
    file apart (other messages, other batches), each row with another last name: the student must
    end with the highest row's (``PlannedFile.repeated``)."""
    tag = uuid.uuid4().hex[:6]
    old = [
        rows_pb.StudentRow(
            row_number=i + 1,
            username=f"{tag}-old{i}",
            email_address=f"{tag}-old{i}@uni.example",
            first_name="Old",
            last_name=f"Name{i}",
        )
        for i in range(existing)
    ]
    if old:
        earlier = header(campus.id)
        async with connector(stack) as sis:
            await sis.rows(earlier, old, per_message=500)
            await sis.end(earlier, len(old))
        done = await stack.wait_job(earlier.job_id, timeout=120)
        assert done.counts.created == existing
    rows: list[rows_pb.StudentRow] = []
    expected: dict[int, Expected] = {}
    next_old = 0
    for number in range(1, total + 1):
        if number % 100 == 0:
            row = rows_pb.StudentRow(
                row_number=number, username=f"{tag}-bad{number}", email_address="not-an-email"
            )
            expected[number] = ("FAILED", "INVALID_ROW")
        elif number % 50 == 7 and next_old < existing:
            known = old[next_old]
            changed = next_old % 2 == 0
            row = rows_pb.StudentRow(
                row_number=number,
                username=known.username,
                email_address=known.email_address,
                first_name="Old",
                last_name=f"Renamed{next_old}" if changed else known.last_name,
            )
            expected[number] = ("UPDATED" if changed else "UNCHANGED", "")
            next_old += 1
        else:
            row = rows_pb.StudentRow(
                row_number=number,
                username=f"{tag}-s{number}",
                email_address=f"{tag}-s{number}@uni.example",
                first_name="New",
                last_name=f"Student{number}",
                extra={"cohort": "2026"},
            )
            expected[number] = ("CREATED", "")
        rows.append(row)
    fresh = [number for number, (outcome, _) in expected.items() if outcome == "CREATED"]
    third = len(fresh) // 3
    if repeated > third:
        raise ValueError(f"{total} rows have room for {third} repeated students, not {repeated}")
    groups = [[fresh[g], fresh[g + third], fresh[g + 2 * third]] for g in range(repeated)]
    for g, group in enumerate(groups):
        for number in group:
            rows[number - 1] = rows_pb.StudentRow(
                row_number=number,
                username=f"{tag}-rep{g}",
                email_address=f"{tag}-rep{g}@uni.example",
                first_name="Repeated",
                last_name=f"Row{number}",
            )
            del expected[number]
    return PlannedFile(header(campus.id), rows, expected, existing, groups)


# --- the checker ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExactlyOnce:
    """What ``checked_exactly_once`` counted (``lost`` and ``applied_twice`` are 0 once it returns)."""

    job: pb.ImportJob
    rows: int  # the planned file's rows
    lost: int  # rows with no result in the import service or no outcome in identity
    applied_twice: int  # rows with two results or outcomes, an audit event twice or a student twice


async def count_lost_and_twice(stack: ProcessStack, planned: PlannedFile, school_id: str) -> tuple[int, int]:
    """(lost, applied twice), counted row by row in both databases.

    Lost: planned rows without a result in the import service's ``row_results`` or without an
    outcome in identity's ``import_row_outcomes``. Applied twice: rows (each counted once) with more
    than one result or outcome, an audit event of the job written twice for them, or whose student
    is stored more than once in the school (by username key; a doubled student no row names counts
    as one more).
    """
    numbers = set(range(1, len(planned.rows) + 1))
    by_username = {row.username.lower(): row.row_number for row in planned.rows}
    async with stack.import_db() as db:
        results = await db.fetch(
            "SELECT row_number, count(*) AS n FROM row_results WHERE job_id = $1 GROUP BY 1", planned.job_id
        )
    async with stack.identity_db() as db:
        outcomes = await db.fetch(
            "SELECT row_number, count(*) AS n FROM import_row_outcomes WHERE job_id = $1 GROUP BY 1",
            planned.job_id,
        )
        audited = await db.fetch(
            """SELECT (details->>'row_number')::bigint AS row_number FROM audit_events
               WHERE details->>'job_id' = $1 GROUP BY action, 1 HAVING count(*) > 1""",
            planned.job_id,
        )
        doubled = await db.fetch(
            """SELECT username_key FROM users WHERE school_id = $1::uuid AND username_key IS NOT NULL
               GROUP BY 1 HAVING count(*) > 1""",
            school_id,
        )
    lost = (numbers - {r["row_number"] for r in results}) | (numbers - {o["row_number"] for o in outcomes})
    twice: set[int | str] = {r["row_number"] for r in [*results, *outcomes] if r["n"] > 1}
    twice.update(a["row_number"] for a in audited)
    twice.update(by_username.get(d["username_key"].lower(), d["username_key"]) for d in doubled)
    return len(lost), len(twice)


async def check_exactly_once(stack: ProcessStack, planned: PlannedFile, school_id: str) -> pb.ImportJob:
    """``checked_exactly_once``, for the job."""
    return (await checked_exactly_once(stack, planned, school_id)).job


async def checked_exactly_once(stack: ProcessStack, planned: PlannedFile, school_id: str) -> ExactlyOnce:
    """Every row of the job has exactly one outcome, the planned one; each effect happened once.

    Counted on both sides: the import service's job, its row results (over gRPC and in its
    database), identity's recorded outcomes, the students of the school and the audit events the
    job wrote (one per created or updated student, none twice). Rows lost and rows applied twice are
    counted first (``count_lost_and_twice``): the figures a fault test reports.
    """
    total = len(planned.rows)
    rows_lost, rows_twice = await count_lost_and_twice(stack, planned, school_id)
    assert rows_lost == 0, f"{rows_lost} of {total} rows lost (no outcome)"
    assert rows_twice == 0, f"{rows_twice} rows applied more than once"
    job = await stack.get_job(planned.job_id)
    assert job is not None
    assert job.state == pb.IMPORT_JOB_STATE_COMPLETED, job
    assert (job.total_rows, job.rows_received, job.dead_lettered) == (total, total, 0), job
    if not planned.repeated:
        assert job_counts(job) == planned.counts()

    records = await stack.row_results(planned.job_id)
    assert [r.row_number for r in records] == list(range(1, total + 1)), "rows missing or twice"
    wrong = [
        (r.row_number, outcome_name(r.outcome), r.reason, planned.expected[r.row_number])
        for r in records
        if r.row_number in planned.expected
        and (outcome_name(r.outcome), r.reason) != planned.expected[r.row_number]
    ]
    assert not wrong, f"{len(wrong)} rows with another outcome than planned, e.g. {wrong[:5]}"
    by_row = {r.row_number: r for r in records}
    counts = planned.counts()
    for name, n in check_repeated(planned, by_row).items():
        counts[name] += n
    assert job_counts(job) == counts

    async with stack.import_db() as db:
        stored = await db.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT row_number) AS rows FROM row_results WHERE job_id = $1",
            planned.job_id,
        )
        assert (stored["n"], stored["rows"]) == (total, total)
        recount = await db.fetch(
            "SELECT lower(outcome) AS outcome, count(*) AS n FROM row_results WHERE job_id = $1 GROUP BY 1",
            planned.job_id,
        )
        assert {r["outcome"]: r["n"] for r in recount} == {k: v for k, v in counts.items() if v}

    async with stack.identity_db() as db:
        outcomes = await db.fetch(
            "SELECT row_number, outcome, user_id::text AS user_id FROM import_row_outcomes WHERE job_id = $1",
            planned.job_id,
        )
        assert len(outcomes) == total, "identity recorded another number of outcomes"
        differ = [
            o["row_number"]
            for o in outcomes
            if (o["outcome"], o["user_id"] or "")
            != (outcome_name(by_row[o["row_number"]].outcome), by_row[o["row_number"]].user_id)
        ]
        assert not differ, f"identity and import disagree on rows {differ[:10]}"
        doubled = await db.fetch(
            """SELECT action, details->>'row_number' AS row, count(*) AS n FROM audit_events
               WHERE details->>'job_id' = $1 GROUP BY 1, 2 HAVING count(*) > 1""",
            planned.job_id,
        )
        assert not doubled, f"audit events written twice: {[dict(d) for d in doubled[:5]]}"
        actions = await db.fetch(
            "SELECT action, count(*) AS n FROM audit_events WHERE details->>'job_id' = $1 GROUP BY 1",
            planned.job_id,
        )
        assert {a["action"]: a["n"] for a in actions} == {
            k: v
            for k, v in {
                "user.created_by_file": counts["created"],
                "user.updated_by_file": counts["updated"],
            }.items()
            if v
        }
        students = await db.fetchval(
            "SELECT count(*) FROM users WHERE school_id = $1::uuid AND user_type = 'STUDENT'", school_id
        )
        assert students == planned.existing + counts["created"], "students created twice or lost"
        twice = await db.fetchval(
            """SELECT count(*) FROM (SELECT username_key FROM users WHERE school_id = $1::uuid
               GROUP BY 1 HAVING count(*) > 1) AS t""",
            school_id,
        )
        assert twice == 0
        created = {r.user_id: r for r in records if r.outcome == rows_pb.ROW_OUTCOME_CREATED}
        names = await db.fetch(
            "SELECT id::text AS id, username FROM users WHERE id = ANY($1::uuid[])", list(created)
        )
        assert len(names) == len(created) == counts["created"]
        assert all(created[n["id"]].row.username == n["username"] for n in names)
        winners = {by_row[group[-1]].user_id: by_row[group[-1]].row for group in planned.repeated}
        finals = await db.fetch(
            "SELECT id::text AS id, username, last_name FROM users WHERE id = ANY($1::uuid[])", list(winners)
        )
        assert len(finals) == len(planned.repeated)
        lost = [
            (f["username"], f["last_name"]) for f in finals if f["last_name"] != winners[f["id"]].last_name
        ]
        assert not lost, f"repeated students without their highest row's values: {lost[:5]}"
    return ExactlyOnce(job, total, rows_lost, rows_twice)


def check_repeated(planned: PlannedFile, by_row: dict[int, pb.RowRecord]) -> Counter[str]:
    """What any order of arrival gives a repeated student's rows (the highest row wins): one user
    for the group, exactly one row CREATED it, the highest row is CREATED or UPDATED (nothing can
    supersede it), every other row UPDATED (it came before a higher one) or SKIPPED as SUPERSEDED
    (after). The tally of the groups' outcomes, for the job's exact counts."""
    tally: Counter[str] = Counter()
    for group in planned.repeated:
        records = [by_row[number] for number in group]
        seen = [(outcome_name(r.outcome), r.reason) for r in records]
        assert len({r.user_id for r in records}) == 1 and records[0].user_id, (group, seen)
        assert [outcome for outcome, _ in seen].count("CREATED") == 1, (group, seen)
        assert seen[-1] in (("CREATED", ""), ("UPDATED", "")), (group, seen)
        assert set(seen) <= {("CREATED", ""), ("UPDATED", ""), ("SKIPPED", "SUPERSEDED")}, (group, seen)
        tally.update(outcome.lower() for outcome, _ in seen)
    return tally


# --- publishing across a broker restart -----------------------------------------------------------


@dataclass
class PatientPublisher:
    """Publishes each message until the broker confirms it, reconnecting as often as needed.

    A message whose confirm was lost in a broker restart is published again with the same
    ``message_id`` (at least once, as connectors do); the import service must not apply it twice.
    """

    amqp_url: str
    exchange_name: str
    retries: int = 0
    published: int = 0
    _connection: aio_pika.abc.AbstractRobustConnection | None = None
    _exchange: aio_pika.abc.AbstractExchange | None = None
    errors: list[str] = field(default_factory=list)

    async def _ready_exchange(self) -> aio_pika.abc.AbstractExchange:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect_robust(self.amqp_url, reconnect_interval=0.5, timeout=5)
        if self._exchange is None:
            channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await channel.get_exchange(self.exchange_name, ensure=False)
        return self._exchange

    async def publish(self, message: pb.ImportMessage, message_id: str, deadline: float) -> None:
        body = message.SerializeToString()
        while True:
            try:
                exchange = await asyncio.wait_for(self._ready_exchange(), timeout=10)
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/x-protobuf",
                        message_id=message_id,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        user_id=amqp_user(self.amqp_url),  # the import service requires it
                    ),
                    routing_key=f"rows.{message.school_id}",
                    timeout=10,
                )
                self.published += 1
                return
            except Exception as exc:
                self.retries += 1
                self.errors.append(type(exc).__name__)
                if time.monotonic() > deadline:
                    raise
                self._exchange = None
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), timeout=10)


# --- the broker and the database, stopped and always started again -------------------------------


def _run(*command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False)


def rabbitmqctl_available() -> bool:
    return _run("rabbitmqctl", "--version", timeout=30).returncode == 0 if _which("rabbitmqctl") else False


def pg_cluster() -> tuple[str, str] | None:
    """(version, cluster) of the local Debian PostgreSQL cluster, when this machine runs one."""
    if not _which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return (versions[-1], "main") if versions else None


def _which(name: str) -> bool:
    return any((Path(d) / name).exists() for d in os.environ.get("PATH", "").split(os.pathsep))


async def broker_stop() -> None:
    done = await asyncio.to_thread(_run, "rabbitmqctl", "stop_app")
    assert done.returncode == 0, done.stderr


async def broker_start(amqp_url: str) -> None:
    """``rabbitmqctl start_app`` and wait until AMQP connections work again."""
    done = await asyncio.to_thread(_run, "rabbitmqctl", "start_app")
    assert done.returncode == 0, done.stderr
    await asyncio.to_thread(_run, "rabbitmqctl", "await_startup", timeout=120)

    async def accepts() -> bool:
        try:
            connection = await aio_pika.connect(amqp_url, timeout=3)
        except Exception:
            return False
        await connection.close()
        return True

    await eventually(accepts, timeout=120, what="RabbitMQ accepting connections", every=0.5)


@contextlib.asynccontextmanager
async def broker_restored(amqp_url: str) -> AsyncIterator[None]:
    """Whatever happens inside, the broker application is running again afterwards."""
    try:
        yield
    finally:
        if not answers(amqp_url, 5672):
            await broker_start(amqp_url)
        else:  # the port may answer while the app is stopped (the Erlang node is up)
            await asyncio.to_thread(_run, "rabbitmqctl", "start_app")
            await broker_start(amqp_url)


async def postgres(action: str) -> None:
    cluster = pg_cluster()
    assert cluster is not None
    version, name = cluster
    done = await asyncio.to_thread(_run, "pg_ctlcluster", "--skip-systemctl-redirect", version, name, action)
    assert done.returncode == 0, f"pg_ctlcluster {action}: {done.stdout} {done.stderr}"


async def postgres_answers(server_url: str) -> bool:
    try:
        conn = await asyncpg.connect(server_url, timeout=3)
    except Exception:
        return False
    try:
        return bool(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def postgres_restored(server_url: str) -> AsyncIterator[None]:
    """Whatever happens inside, PostgreSQL is running and answering afterwards."""
    try:
        yield
    finally:
        if not await postgres_answers(server_url):
            with contextlib.suppress(AssertionError):
                await postgres("start")
            await eventually(
                lambda: postgres_answers(server_url), timeout=120, what="PostgreSQL answering", every=0.5
            )


async def job_under_way(
    stack: ProcessStack, campus: Campus, rows: int = 10_000, first: int = 40
) -> tuple[PlannedFile, list[pb.ImportMessage]]:
    """A planned file of ``rows`` (100 rows a message), its first ``first`` messages published and
    at least 500 rows received by the import service; the file and all its messages."""
    planned = await plan_file(stack, campus, rows)
    messages = planned.messages(per_message=100)
    await publish_all(stack, messages[:first])

    async def started() -> bool:
        job = await stack.get_job(planned.job_id)
        return job is not None and job.rows_received >= 500

    await eventually(started, timeout=60, what="the job under way")
    return planned, messages


class HealthWatch:
    """Each service's health as asked over time: ``await watch(status)`` asks every service once and
    says whether each is now ``status``; ``seen`` keeps every answer in order."""

    def __init__(self, stack: ProcessStack, names: Sequence[str]) -> None:
        self._stack = stack
        self.seen: dict[str, list[int | None]] = {name: [] for name in names}

    async def __call__(self, status: int) -> bool:
        for name, states in self.seen.items():
            states.append(await self._stack.health(name))
        return all(states[-1] == status for states in self.seen.values())


async def publish_all(stack: ProcessStack, messages: Sequence[pb.ImportMessage]) -> None:
    async with connector(stack) as sis:
        for message in messages:
            await sis.send(message)


# --- a database link that can be cut (one service's database unreachable, the other's fine) -------


class CuttableLink:
    """A TCP forwarder in front of PostgreSQL: ``cut()`` refuses new connections and drops open
    ones (the database host unreachable for one service only), ``restore()`` forwards again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        if self._server is None:
            await self.start()
