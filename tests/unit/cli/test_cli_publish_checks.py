"""``rollcall import publish`` (typer CliRunner) with a stand-in identity service and the real broker:
the school is checked (GetSchool) and the exchange declared passively before anything is published;
a wrong ``--school`` or a mistyped ``--prefix`` is one line, exit 1, nothing published and nothing
created; broker errors are one line naming the URL with its password masked; the OneRoster rows
dropped as non-students are counted; a file that cannot be read says what was published."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq
import pytest

from shared.amqp.topology import Topology, declare, delete
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.unit.cli.cli_support import SCHOOL, Served, cli, closed_port, lines, serve

CSV = "username,email_address,first_name,last_name\nann,ann@uni.edu,Ann,Lee\nbo,bo@uni.edu,Bo,Kim\n"
USERS = (
    "sourcedId,role,status,username,email,givenName,familyName\n"
    "1,student,active,ann,ann@uni.edu,Ann,Lee\n"
    "2,teacher,active,tom,tom@uni.edu,Tom,Ray\n"
    "3,administrator,,ada,ada@uni.edu,Ada,Ng\n"
    "4,student,inactive,ina,ina@uni.edu,Ina,Ok\n"
    "5,student,tobedeleted,old,old@uni.edu,Old,Gone\n"
    "6,teacher,active,tia,tia@uni.edu,Tia,Li\n"
)


@pytest.fixture
def served() -> Iterator[Served]:
    yield from serve()


@pytest.fixture
def topology(amqp_url: str) -> Iterator[Topology]:
    """A topology of its own, declared as the import service declares it, deleted afterwards."""
    topology = Topology(f"cli-{uuid.uuid4().hex[:10]}")
    asyncio.run(_on_channel(amqp_url, lambda channel: declare(channel, topology)))
    try:
        yield topology
    finally:
        asyncio.run(_on_channel(amqp_url, lambda channel: delete(channel, topology)))


async def _on_channel(amqp_url: str, work):  # type: ignore[no-untyped-def]
    connection = await aio_pika.connect(amqp_url)
    try:
        return await work(await connection.channel())
    finally:
        await connection.close()


def _published(amqp_url: str, topology: Topology) -> list[pb.ImportMessage]:
    async def drain(channel: aio_pika.abc.AbstractChannel) -> list[pb.ImportMessage]:
        queue = await channel.get_queue(topology.rows_queue, ensure=True)
        found = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append(pb.ImportMessage.FromString(message.body))
        return found

    return asyncio.run(_on_channel(amqp_url, drain))


def _exchange_exists(amqp_url: str, name: str) -> bool:
    async def probe(channel: aio_pika.abc.AbstractChannel) -> bool:
        try:
            await channel.get_exchange(name, ensure=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True

    return asyncio.run(_on_channel(amqp_url, probe))


def _with_password(amqp_url: str, password: str, port: int | None = None) -> str:
    parts = urlsplit(amqp_url)
    host = f"{parts.hostname}:{port or parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'guest'}:{password}@{host}"))


def _publish(served: Served, amqp_url: str, prefix: str, path: Path, *args: str) -> list[str]:
    return [*served.head(), "--amqp-url", amqp_url, "--prefix", prefix, "import", "publish", str(path), *args]


def _one_line(stderr: str) -> str:
    found = lines(stderr)
    assert len(found) == 1, stderr
    return found[0]


def test_publish_checks_the_school_then_publishes_every_row_and_the_end(
    served: Served, amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    path = tmp_path / "students.csv"
    path.write_text(CSV)
    result = cli(*_publish(served, amqp_url, topology.prefix, path, "--school", SCHOOL, "--job-id", "j-1"))
    assert result.exit_code == 0, result.output
    assert _one_line(result.stderr) == "published 2 rows as job j-1"
    assert served.identity.asked == [f"GetSchool {SCHOOL}"]
    messages = _published(amqp_url, topology)
    assert [len(m.rows.rows) for m in messages[:-1]] == [2] and messages[-1].end.total_rows == 2
    assert {m.job_id for m in messages} == {"j-1"} and {m.school_id for m in messages} == {SCHOOL}

    as_json = cli(
        *_publish(served, amqp_url, topology.prefix, path, "--school", SCHOOL, "--job-id", "j-2", "--json")
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == {
        "jobId": "j-2",
        "rowsPublished": 2,
        "skippedRows": {"total": 0, "nonStudents": 0, "byRole": {}, "byStatus": {}},
    }


def test_a_wrong_school_is_one_line_and_nothing_is_published(
    served: Served, amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    path = tmp_path / "students.csv"
    path.write_text(CSV)
    result = cli(*_publish(served, amqp_url, topology.prefix, path, "--school", "typo"))
    assert result.exit_code == 1
    assert _one_line(result.stderr) == "error NOT_FOUND SCHOOL_NOT_FOUND: school not found"
    assert result.stdout == ""
    as_json = cli(*_publish(served, amqp_url, topology.prefix, path, "--school", "typo", "--json"))
    assert as_json.exit_code == 1 and as_json.stdout == ""
    assert json.loads(as_json.stderr)["error"] == {
        "code": "NOT_FOUND",
        "reason": "SCHOOL_NOT_FOUND",
        "message": "school not found",
        "metadata": {"school_id": "typo"},
    }
    assert _published(amqp_url, topology) == []


def test_a_mistyped_prefix_names_the_exchange_and_creates_nothing(
    served: Served, amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    path = tmp_path / "students.csv"
    path.write_text(CSV)
    wrong = f"{topology.prefix}-typo"
    result = cli(*_publish(served, amqp_url, wrong, path, "--school", SCHOOL))
    assert result.exit_code == 1
    line = _one_line(result.stderr)
    assert line.startswith(f"error NOT_FOUND EXCHANGE_NOT_FOUND: no exchange '{wrong}.import' on amqp://"), (
        line
    )
    assert "is --prefix right" in line
    for name in (f"{wrong}.import", f"{wrong}.import.dead"):
        assert not _exchange_exists(amqp_url, name)
    as_json = cli(*_publish(served, amqp_url, wrong, path, "--school", SCHOOL, "--json"))
    error = json.loads(as_json.stderr)["error"]
    assert (error["code"], error["reason"], error["exchange"]) == (
        "NOT_FOUND",
        "EXCHANGE_NOT_FOUND",
        f"{wrong}.import",
    )
    assert _published(amqp_url, topology) == []


def test_an_unreachable_broker_is_one_line_naming_the_url_without_its_password(
    served: Served, amqp_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "students.csv"
    path.write_text(CSV)
    port = closed_port()
    url = _with_password(amqp_url, "s3cret-pw", port)
    result = cli(*_publish(served, url, "rollcall", path, "--school", SCHOOL))
    assert result.exit_code == 1
    line = _one_line(result.stderr)
    host = urlsplit(amqp_url).hostname
    assert line.startswith(
        f"error UNAVAILABLE BROKER_UNREACHABLE: cannot connect to the broker at amqp://guest:***@{host}:{port}/"
    ), line
    assert "s3cret-pw" not in result.output and "Traceback" not in result.output
    as_json = cli(*_publish(served, url, "rollcall", path, "--school", SCHOOL, "--json"))
    error = json.loads(as_json.stderr)["error"]
    assert (error["reason"], error["url"]) == ("BROKER_UNREACHABLE", f"amqp://guest:***@{host}:{port}/")
    assert "s3cret-pw" not in as_json.output


def test_a_refused_login_is_one_line_without_the_password(
    served: Served, amqp_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "students.csv"
    path.write_text(CSV)
    result = cli(
        *_publish(served, _with_password(amqp_url, "not-the-password"), "rollcall", path, "--school", SCHOOL)
    )
    assert result.exit_code == 1
    line = _one_line(result.stderr)
    assert line.startswith("error UNAUTHENTICATED BROKER_LOGIN_REFUSED: the broker at amqp://guest:***@"), (
        line
    )
    assert "not-the-password" not in result.output


def test_an_unreachable_identity_service_stops_before_the_broker(
    amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    path = tmp_path / "students.csv"
    path.write_text(CSV)
    port = closed_port()
    args = ["--identity", f"127.0.0.1:{port}", "--amqp-url", amqp_url, "--prefix", topology.prefix]
    result = cli(*args, "import", "publish", str(path), "--school", SCHOOL)
    assert result.exit_code == 1
    assert _one_line(result.stderr).startswith(
        f"error UNAVAILABLE SERVICE_UNREACHABLE: cannot reach the identity service at 127.0.0.1:{port}"
    )
    assert _published(amqp_url, topology) == []


def test_oneroster_rows_that_are_not_students_are_counted_and_said(
    served: Served, amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    path = tmp_path / "users.csv"
    path.write_text(USERS)
    args = ("--school", SCHOOL, "--format", "oneroster", "--job-id", "j-or")
    result = cli(*_publish(served, amqp_url, topology.prefix, path, *args))
    assert result.exit_code == 0, result.output
    assert lines(result.stderr) == [
        "published 2 rows as job j-or",
        "skipped 4 OneRoster rows: 3 not students (teacher 2, administrator 1), "
        "1 student with status inactive",
    ]
    rows = [row for m in _published(amqp_url, topology) for row in m.rows.rows]
    assert [(r.row_number, r.username, r.status) for r in rows] == [(1, "ann", ""), (5, "old", "archived")]
    as_json = cli(*_publish(served, amqp_url, topology.prefix, path, *args, "--json"))
    assert json.loads(as_json.stdout)["skippedRows"] == {
        "total": 4,
        "nonStudents": 3,
        "byRole": {"teacher": 2, "administrator": 1},
        "byStatus": {"inactive": 1},
    }


def test_a_file_without_its_columns_is_one_line_and_nothing_is_published(
    served: Served, amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    path = tmp_path / "students.csv"
    path.write_text("name,mail\nann,ann@uni.edu\n")
    result = cli(*_publish(served, amqp_url, topology.prefix, path, "--school", SCHOOL))
    assert result.exit_code == 1
    line = _one_line(result.stderr)
    assert line.startswith("error INVALID_ARGUMENT INVALID_FILE: students.csv: the header row has no "), line
    assert line.endswith("; nothing was published")
    assert _published(amqp_url, topology) == []


def test_a_file_that_breaks_part_way_says_what_was_published(
    served: Served, amqp_url: str, topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.cli import publishing
    from shared.files import records

    monkeypatch.setattr(publishing, "READ_BYTES", 64)  # the bad record comes in a later chunk
    path = tmp_path / "students.csv"
    good = "".join(f"s{n},s{n}@uni.edu,Given,Family\n" for n in range(20))
    path.write_text(
        "username,email_address,first_name,last_name\n" + good + "x" * (records.MAX_RECORD_CHARS + 10)
    )
    args = ("--school", SCHOOL, "--job-id", "j-bad", "--rows-per-message", "1")
    result = cli(*_publish(served, amqp_url, topology.prefix, path, *args))
    assert result.exit_code == 1
    line = _one_line(result.stderr)
    assert line.startswith("error INVALID_ARGUMENT INVALID_FILE: students.csv: "), line
    assert (
        "rows were published as job j-bad, without its end: publish the file again with --job-id j-bad"
        in line
    )
    messages = _published(amqp_url, topology)
    assert messages and not any(m.HasField("end") for m in messages)


def test_no_school_check_publishes_without_asking_identity(
    amqp_url: str, topology: Topology, tmp_path: Path
) -> None:
    """A connector host that cannot reach the identity service still publishes (the exchange is
    still checked); the import service judges the school."""
    path = tmp_path / "students.csv"
    path.write_text(CSV)
    args = ["--identity", f"127.0.0.1:{closed_port()}", "--amqp-url", amqp_url, "--prefix", topology.prefix]
    result = cli(*args, "import", "publish", str(path), "--school", SCHOOL, "--no-school-check", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rowsPublished"] == 2
    assert _published(amqp_url, topology)[-1].end.total_rows == 2


def test_a_broker_failure_part_way_is_one_line_saying_how_to_publish_again(
    served: Served, amqp_url: str, topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.amqp.publisher import AmqpPublisher
    from shared.errors import Reason, RollcallError

    real = AmqpPublisher.publish_rows
    calls: list[int] = []

    async def fails_on_the_third(self: AmqpPublisher, spec: object, rows: object) -> None:
        calls.append(1)
        if len(calls) >= 3:
            raise RollcallError(Reason.UNAVAILABLE, "the queue did not accept the message (nack); try again")
        await real(self, spec, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(AmqpPublisher, "publish_rows", fails_on_the_third)
    path = tmp_path / "students.csv"
    path.write_text(CSV.splitlines()[0] + "\n" + "".join(f"s{n},s{n}@uni.edu,G,F\n" for n in range(5)))
    url = _with_password(amqp_url, urlsplit(amqp_url).password or "guest")
    args = ("--school", SCHOOL, "--job-id", "j-cut", "--rows-per-message", "1")
    result = cli(
        *[*served.head(), "--amqp-url", url, "--prefix", topology.prefix],
        "import",
        "publish",
        str(path),
        *args,
    )
    assert result.exit_code == 1
    line = _one_line(result.stderr)
    assert line.startswith(
        f"error UNAVAILABLE PUBLISH_FAILED: publishing to {topology.exchange} on amqp://guest:***@"
    ), line
    assert "the queue did not accept the message (nack); try again; " in line
    assert line.endswith(
        "without its end: publish the file again with --job-id j-cut (rows sent again count once)"
    )
    assert not any(m.HasField("end") for m in _published(amqp_url, topology))
