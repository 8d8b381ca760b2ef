"""A SIS connector written in Node.js (tests/e2e/connectors/node: amqplib from its lock file) publishes
a student CSV to the running stack as proto3 JSON, per the queue contract, and the import service
applies it: every row's outcome, reason and the row as received are read back with ListRowResults,
and the job's counts. A copy of each message, from a queue of the test's own bound to the school's
routing key, shows the properties the contract asks for (persistent, JSON, unique ids, the AMQP user).
A mistyped prefix is one line on stderr and a non-zero exit, with nothing published."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika

from shared.amqp.publisher import amqp_user
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import (
    JSON,
    SENSITIVE_MESSAGE,
    UPLOAD_HEADER,
    csv_text,
    email,
    new_campus,
    outcome_name,
)
from tests.process_stack import ProcessStack, job_counts, unique

CONNECTOR_DIR = Path(__file__).resolve().parent.parent / "connectors" / "node"
CONNECTOR = CONNECTOR_DIR / "publish_csv.js"


def _connector_installed() -> None:
    """amqplib from the lock file (``npm ci``) when node_modules is missing or older than the lock."""
    installed = CONNECTOR_DIR / "node_modules" / ".package-lock.json"
    lock = CONNECTOR_DIR / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm = shutil.which("npm")
        assert npm is not None, "npm is on the machine (the Node.js connector is tested for real)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CONNECTOR_DIR, check=True, timeout=300)


@dataclass(frozen=True)
class Run:
    code: int | None
    stdout: str
    stderr: str


async def _run_connector(*args: str) -> Run:
    node = shutil.which("node")
    assert node is not None, "node is on the machine"
    process = await asyncio.create_subprocess_exec(
        node,
        str(CONNECTOR),
        *args,
        cwd=CONNECTOR_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return Run(process.returncode, out.decode(), err.decode())


@dataclass(frozen=True)
class Copy:
    """One message as the broker routed it, from the test's own queue."""

    properties: dict[str, Any]
    body: dict[str, Any]


async def _copies(queue: aio_pika.abc.AbstractQueue, count: int) -> list[Copy]:
    copies: list[Copy] = []
    for _ in range(200):
        while len(copies) < count and (message := await queue.get(no_ack=True, fail=False)) is not None:
            properties = {
                "delivery_mode": message.delivery_mode,
                "content_type": message.content_type,
                "message_id": message.message_id,
                "user_id": message.user_id,
                "routing_key": message.routing_key,
            }
            copies.append(Copy(properties, json.loads(message.body)))
        if len(copies) >= count:
            return copies
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(copies)} of {count} messages reached the test's queue")


async def test_a_node_connector_publishes_a_csv_as_json_and_every_row_has_its_outcome(
    stack: ProcessStack, tmp_path: Path
) -> None:
    _connector_installed()
    campus = await new_campus(stack)
    kept = await campus.student("kkept", email("kim.kept"), "Kim", "Kept")
    renamed = await campus.student("rrenamed", email("rae.renamed"), "Rae", "Renamed")
    keyed = await campus.student("aauth", email("ari.auth"), "Ari", "Auth", auth="SIS-100")
    named = await campus.student("uname", email("uma.name"), "Uma", "Name")
    new_a, new_b = email("nia.new"), email("noa.new")
    rows = [
        ["nnia", new_a, "Nia", "New, Jr.", "SIS-201", "2026"],  # 1: CREATED (a quoted comma)
        ["kkept", kept.email, "Kim", "Kept", "", "2025"],  # 2: UNCHANGED
        ["rrenamed", renamed.email, "Rae", 'Re "Named"', "", "2025"],  # 3: UPDATED last name
        ["", "", "", "", "", ""],  # 4: blank: no row, its number used up
        ["", email("nobody"), "No", "Username", "", "2026"],  # 5: INVALID_ROW username
        ["bademail", "not-an-email", "Bad", "Email", "", "2026"],  # 6: INVALID_ROW email_address
        ["aauth", keyed.email, "Ari", "Auth", "SIS-999", "2025"],  # 7: auth identifier differs
        ["other", named.email, "Uma", "Name", "", "2025"],  # 8: username differs
        ["nnoa", new_b, "Noa", "New", "", ""],  # 9: CREATED
    ]
    path = tmp_path / "students.csv"
    # a spreadsheet's export: BOM, CRLF, header names in another case and order-free, an extra column
    header = [name.upper() if name == "username" else name for name in UPLOAD_HEADER] + ["Cohort"]
    path.write_bytes(b"\xef\xbb\xbf" + csv_text(rows, header).encode())
    job_id = unique("node-job")

    connection = await aio_pika.connect(stack.amqp_url)
    try:
        channel = await connection.channel()
        copies_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await copies_queue.bind(stack.exchange, routing_key=f"rows.{campus.id}")
        run = await _run_connector(
            "--url", stack.amqp_url, "--prefix", stack.prefix, "--school", campus.id,
            "--job", job_id, "--source-name", "SIS via Node", "--rows-per-message", "3", str(path),
        )  # fmt: skip
        assert (run.code, run.stderr) == (0, ""), run
        assert json.loads(run.stdout) == {"jobId": job_id, "rows": 8, "messages": 4}
        copies = await _copies(copies_queue, 4)
    finally:
        await connection.close()

    # the contract's message properties, on every message; the end goes last
    ids = [c.properties["message_id"] for c in copies]
    assert all(ids) and len(set(ids)) == 4, ids
    for copy in copies:
        assert {k: v for k, v in copy.properties.items() if k != "message_id"} == {
            "delivery_mode": aio_pika.DeliveryMode.PERSISTENT,
            "content_type": JSON,
            "user_id": amqp_user(stack.amqp_url),
            "routing_key": f"rows.{campus.id}",
        }
        assert {k: v for k, v in copy.body.items() if k not in ("rows", "end")} == {
            "jobId": job_id,
            "schoolId": campus.id,
            "mode": "IMPORT_MODE_ONGOING_SYNC",
            "sensitiveFieldsUpdate": False,
            "dryRun": False,
            "sourceName": "SIS via Node",
            "fullRoster": False,
        }
    assert [[r["rowNumber"] for r in c.body["rows"]["rows"]] for c in copies[:3]] == [
        [1, 2, 3],
        [5, 6, 7],
        [8, 9],
    ]
    assert copies[3].body["end"] == {"totalRows": 8}

    job = await stack.wait_job(job_id, timeout=30)
    assert (job.state, job.total_rows, job.rows_received, job.dead_lettered) == (
        pb.IMPORT_JOB_STATE_COMPLETED,
        8,
        8,
        0,
    )
    assert (job.school_id, job.mode, job.source_name) == (
        campus.id,
        rows_pb.IMPORT_MODE_ONGOING_SYNC,
        "SIS via Node",
    )
    assert job_counts(job) == {
        "created": 2,
        "updated": 1,
        "unchanged": 1,
        "skipped": 0,
        "failed": 4,
        "approved": 0,
    }
    assert dict(job.counts.field_changes) == {
        "username": 2,
        "email_address": 2,
        "first_name": 2,
        "last_name": 3,
        "auth_identifier": 1,
        "status": 2,
    }

    records = {r.row_number: r for r in await stack.row_results(job_id)}
    assert {n: (outcome_name(r.outcome), r.reason) for n, r in records.items()} == {
        1: ("CREATED", ""),
        2: ("UNCHANGED", ""),
        3: ("UPDATED", ""),
        5: ("FAILED", "INVALID_ROW"),
        6: ("FAILED", "INVALID_ROW"),
        7: ("FAILED", "SENSITIVE_FIELDS_REQUIRED"),
        8: ("FAILED", "SENSITIVE_FIELDS_REQUIRED"),
        9: ("CREATED", ""),
    }
    assert not any(r.approved for r in records.values())
    assert "username" in records[5].message and "email_address" in records[6].message
    assert all(records[n].message.startswith(SENSITIVE_MESSAGE) for n in (7, 8))
    # the rows as the import service received them from JSON: every field, the extra column
    sent = {n: row for n, row in enumerate(rows, start=1) if any(row)}
    for number, record in records.items():
        username, address, first, last, auth, cohort = sent[number]
        assert (record.row.row_number, record.row.username, record.row.email_address) == (
            number,
            username,
            address,
        )
        assert (record.row.first_name, record.row.last_name, record.row.auth_identifier) == (
            first,
            last,
            auth,
        )
        assert dict(record.row.extra) == {"Cohort": cohort}
    # whom the rows matched or created, and what they changed
    assert (records[2].user_id, records[3].user_id) == (kept.id, renamed.id)
    assert [(c.field, c.old_value, c.new_value) for c in records[3].changes] == [
        ("last_name", "Renamed", 'Re "Named"')
    ]
    assert all(not records[n].user_id or records[n].user_id in (keyed.id, named.id) for n in (7, 8))
    for number, address in ((1, new_a), (9, new_b)):
        created = await campus.user(records[number].user_id)
        assert (created.email, created.status, created.origin) == (
            address,
            res.USER_STATUS_ACTIVE,
            res.USER_ORIGIN_STUDENT_FILE,
        )
    assert (await campus.user(records[1].user_id)).last_name == "New, Jr."
    assert (await campus.user(keyed.id)).auth_identifier == "SIS-100"  # the failed rows changed nothing
    assert (await campus.user(named.id)).username == "uname"


async def test_a_mistyped_prefix_is_one_line_and_a_non_zero_exit(stack: ProcessStack, tmp_path: Path) -> None:
    _connector_installed()
    path = tmp_path / "students.csv"
    path.write_text(csv_text([["nobody", email("nobody"), "No", "Body", ""]]), encoding="utf-8")
    wrong = f"{stack.prefix}-typo"
    run = await _run_connector(
        "--url", stack.amqp_url, "--prefix", wrong, "--school", str(uuid.uuid4()), str(path)
    )
    assert (run.code, run.stdout) == (1, "")
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"publish_csv: error: no exchange '{wrong}.import' on amqp://"), run.stderr
