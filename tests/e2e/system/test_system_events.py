"""Issue 10's events as an internal platform receives them, through both services, their relays, the
courier, the broker and PostgreSQL: a school's story — sign-up and approval, a merge confirmed with
the mailed code, a sync with updates, a full roster archiving two students, its undo — and a consumer
written in Node.js (amqplib) bound to ``rollcall.events`` receives exactly the events the outboxes
hold for that story, each once, in per-subject order, with CloudEvents headers and JSON bodies it can
read. The same story with protobuf bodies, consumed from Python."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from google.protobuf import field_mask_pb2

from shared.amqp.topology import Topology, declare_events
from shared.events.publisher import decode
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import Campus, csv_text, new_campus, publish_csv, spec_for
from tests.integration.identity_email.email_support import CODE_IN_MAIL, code_in, text_of
from tests.integration.identity_mail.mail_helpers import SmtpServer
from tests.process_stack import ProcessStack, eventually, process_stack

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
CONSUMER = NODE_DIR / "consume_events.js"


def _node_ready() -> None:
    """amqplib installed from the lock file (npm ci) once."""
    if not (NODE_DIR / "node_modules" / "amqplib").is_dir():
        npm = shutil.which("npm")
        assert npm is not None, "npm is on the machine (Node.js clients are tested for real)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def _stack(
    pg_server_url: str, amqp_url: str, prefix: str, smtp: SmtpServer, content_type: str
) -> AsyncIterator[ProcessStack]:
    env = {"ROLLCALL_EVENTS_CONTENT_TYPE": content_type, "ROLLCALL_MAIL_FROM": "careers@rollcall.example"}
    async with process_stack(
        pg_server_url, amqp_url, prefix, smtp_port=smtp.port, relays=True, extra_env=env
    ) as stack:
        yield stack


async def _code(smtp: SmtpServer, address: str) -> str:
    """The code of the email-change mail to ``address`` (other mail may go there too)."""

    async def arrived() -> Any:
        return [
            m for m in smtp.collector.messages if address in str(m["To"]) and CODE_IN_MAIL.search(text_of(m))
        ]

    mails = await eventually(arrived, timeout=60, what=f"the code mail to {address}")
    return code_in(mails[-1])


async def _story(stack: ProcessStack, smtp: SmtpServer, tmp: Path) -> dict[str, Any]:
    campus = await new_campus(stack, "Events University")
    await stack.identity.UpdateSchool(
        ipb.UpdateSchoolRequest(
            school=res.School(id=campus.id, change_threshold_percent=50),
            update_mask=field_mask_pb2.FieldMask(paths=["change_threshold_percent"]),
        ),
        metadata=campus.staff_md,
    )
    approved = await campus.sign_up(f"ann-{uuid.uuid4().hex[:6]}@gmail.com")
    await stack.identity.ApproveStudent(
        ipb.ApproveStudentRequest(user_id=approved.id), metadata=campus.staff_md
    )

    existing = await campus.student(f"bo-{uuid.uuid4().hex[:4]}", f"bo-{uuid.uuid4().hex[:6]}@uni.example")
    home = f"bo-{uuid.uuid4().hex[:6]}@gmail.com"
    merged = await campus.sign_up(home)
    await stack.identity.MergePendingStudent(
        ipb.MergePendingStudentRequest(pending_user_id=merged.id, existing_user_id=existing.id),
        metadata=campus.staff_md,
    )
    code = await _code(smtp, home)
    await stack.identity.ConfirmEmailChange(
        ipb.ConfirmEmailChangeRequest(user_id=existing.id, code=code, new_password="a new long passphrase"),
        metadata=stack.platform_md,
    )

    tag = uuid.uuid4().hex[:6]
    students = [(f"{tag}-{n}", f"{tag}-{n}@uni.example", "Cy", f"Student {n}", "") for n in range(5)]
    sync = spec_for(campus.id)
    await publish_csv(stack, tmp, csv_text(students), sync)
    await stack.wait_job(sync.job_id, timeout=60)
    renamed = [(u, e, "Renamed", la, a) for u, e, f, la, a in students[:1]]
    update = spec_for(campus.id)
    await publish_csv(stack, tmp, csv_text(renamed), update)
    await stack.wait_job(update.job_id, timeout=60)

    roster = replace(spec_for(campus.id, source="full roster"), full_roster=True)
    await publish_csv(stack, tmp, csv_text(renamed + students[1:3]), roster)
    roster_job = await stack.wait_job(roster.job_id, timeout=60)
    assert roster_job.counts.archived == 2, roster_job
    undo = await stack.importer.UndoImportJob(
        pb.UndoImportJobRequest(job_id=roster.job_id), metadata=campus.staff_md
    )
    await stack.wait_job(undo.job_id, timeout=60)
    users = {u.username: u.id for u in await campus.users()}
    return {
        "campus": campus,
        "approved": approved.id,
        "merged": merged.id,
        "existing": existing.id,
        "students": [users[u] for u, *_ in students],
        "archived": [users[u] for u, *_ in students[3:]],
        "jobs": [sync.job_id, update.job_id, roster.job_id, undo.job_id],
    }


async def _outboxes(stack: ProcessStack, subjects: set[str]) -> list[tuple[str, str, str, int]]:
    """(id, type, subject, sequence) of every event of ``subjects`` in both outboxes."""
    found: list[tuple[str, str, str, int]] = []
    for connect in (stack.identity_db, stack.import_db):
        async with connect() as db:
            rows = await db.fetch(
                "SELECT id::text AS id, type, subject, sequence FROM event_outbox WHERE subject = ANY($1)",
                list(subjects),
            )
            found += [(r["id"], r["type"], r["subject"], r["sequence"]) for r in rows]
    return found


def _subjects(story: dict[str, Any]) -> set[str]:
    campus: Campus = story["campus"]
    return {
        campus.id,
        campus.staff.id,
        story["approved"],
        story["merged"],
        story["existing"],
        *story["students"],
        *story["jobs"],
    }


def _check_story(story: dict[str, Any], events: list[tuple[str, str, str, int]]) -> None:
    """The events every platform must have heard of, in per-subject order."""
    by_subject: dict[str, list[tuple[int, str]]] = {}
    for _, kind, subject, sequence in events:
        by_subject.setdefault(subject, []).append((sequence, kind))
    for subject, seen in by_subject.items():
        assert [s for s, _ in seen] == list(range(1, len(seen) + 1)), f"{subject}: {seen}"
    types = {subject: [k for _, k in seen] for subject, seen in by_subject.items()}
    campus: Campus = story["campus"]
    assert types[campus.id] == ["school.created", "school.updated"]
    assert types[story["approved"]] == ["user.created", "user.approved"]
    assert types[story["merged"]] == ["user.created", "user.merged"]
    assert types[story["existing"]][0] == "user.created" and "user.email_changed" in types[story["existing"]]
    assert types[story["students"][0]] == ["user.created", "user.updated"]
    for archived in story["archived"]:
        assert types[archived] == ["user.created", "user.archived", "user.unarchived"]
    for job in story["jobs"]:
        assert types[job] == ["import_job.completed"]


async def test_a_node_consumer_hears_the_whole_story_once_in_order_as_json(
    pg_server_url: str, amqp_url: str, amqp_prefix: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    _node_ready()
    async with _stack(pg_server_url, amqp_url, f"{amqp_prefix}_evj", smtp, "application/json") as stack:
        exchange = Topology(stack.prefix).events_exchange
        node = await asyncio.create_subprocess_exec(
            "node", str(CONSUMER), amqp_url, exchange, stdout=asyncio.subprocess.PIPE, cwd=NODE_DIR
        )
        assert node.stdout is not None
        lines: list[dict[str, Any]] = []

        async def read() -> None:
            assert node.stdout is not None
            async for raw in node.stdout:
                lines.append(json.loads(raw))

        reader = asyncio.create_task(read())
        try:
            await eventually(
                lambda: _true(any(line.get("ready") for line in lines)), timeout=30, what="node ready"
            )
            story = await _story(stack, smtp, tmp_path)
            subjects = _subjects(story)
            expected = await _outboxes(stack, subjects)

            async def heard_all() -> bool:
                got = {
                    line["messageId"]
                    for line in lines
                    if line.get("headers", {}).get("cloudEvents:subject") in subjects
                }
                return got >= {e[0] for e in expected}

            await eventually(heard_all, timeout=60, what="every event at the node consumer")
            await asyncio.sleep(1.0)  # anything more (a duplicate) would arrive now
        finally:
            node.terminate()
            await node.wait()
            reader.cancel()
    mine = [line for line in lines if line.get("headers", {}).get("cloudEvents:subject") in subjects]
    assert len(mine) == len(expected), "each event once"
    received = []
    for line in mine:
        headers, body = line["headers"], line["body"]
        assert line["contentType"] == "application/json" and line["deliveryMode"] == 2
        assert headers["cloudEvents:specversion"] == "1.0" and headers["cloudEvents:id"] == line["messageId"]
        assert headers["cloudEvents:type"] == f"rollcall.{line['routingKey']}"
        assert headers["cloudEvents:source"] in ("//rollcall/identity", "//rollcall/import")
        assert body["id"] == line["messageId"] and body["type"] == line["routingKey"]
        assert body["subject"] == headers["cloudEvents:subject"]
        assert str(body["sequence"]) == headers["cloudEvents:sequence"]
        received.append((body["id"], body["type"], body["subject"], int(body["sequence"])))
    assert sorted(received) == sorted(expected)
    _check_story(story, received)  # in the order the consumer received them
    approval = next(line["body"] for line in mine if line["routingKey"] == "user.approved")
    assert (
        approval["user"]["user"]["status"] == "USER_STATUS_ACTIVE"
        and "status" in approval["user"]["changedFields"]
    )
    held_or_done = next(line["body"] for line in mine if line["routingKey"] == "import_job.completed")
    assert held_or_done["job"]["job"]["state"] == "IMPORT_JOB_STATE_COMPLETED"


async def test_the_same_story_as_protobuf_consumed_from_python(
    pg_server_url: str, amqp_url: str, amqp_prefix: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    async with _stack(pg_server_url, amqp_url, f"{amqp_prefix}_evp", smtp, "application/x-protobuf") as stack:
        connection = await aio_pika.connect_robust(amqp_url)
        received: list[Any] = []
        try:
            channel = await connection.channel()
            exchange = await declare_events(channel, Topology(stack.prefix))
            queue = await channel.declare_queue("", exclusive=True)
            await queue.bind(exchange, routing_key="#")

            async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                received.append((message, decode(message.body, message.content_type or "")))
                await message.ack()

            await queue.consume(keep)
            story = await _story(stack, smtp, tmp_path)
            subjects = _subjects(story)
            expected = await _outboxes(stack, subjects)

            async def heard_all() -> bool:
                return {e.id for _, e in received if e.subject in subjects} >= {e[0] for e in expected}

            await eventually(heard_all, timeout=60, what="every event at the python consumer")
        finally:
            await connection.close()
    mine = [(m, e) for m, e in received if e.subject in subjects]
    assert all(m.content_type == "application/x-protobuf" for m, _ in mine)
    got = [(e.id, e.type, e.subject, e.sequence) for _, e in mine]
    assert sorted(got) == sorted(expected) and len(got) == len(expected)
    _check_story(story, got)
    unarchived = [e for _, e in mine if e.type == "user.unarchived"]
    assert {e.user.user.status for e in unarchived} == {res.USER_STATUS_ACTIVE}


async def _true(value: bool) -> bool:
    return value


async def test_a_held_job_is_mailed_to_the_schools_notify_emails_through_the_real_relay_and_courier(
    pg_server_url: str, amqp_url: str, amqp_prefix: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    async with _stack(pg_server_url, amqp_url, f"{amqp_prefix}_evm", smtp, "application/json") as stack:
        campus = await new_campus(stack, "Notified University")
        desk = f"careers-{uuid.uuid4().hex[:6]}@uni.example"
        await stack.identity.UpdateSchool(
            ipb.UpdateSchoolRequest(
                school=res.School(id=campus.id, notify_emails=[desk]),
                update_mask=field_mask_pb2.FieldMask(paths=["notify_emails"]),
            ),
            metadata=campus.staff_md,
        )
        tag = uuid.uuid4().hex[:6]
        students = [(f"{tag}-{n}", f"{tag}-{n}@uni.example", "Di", f"Student {n}", "") for n in range(4)]
        seed = spec_for(campus.id)
        await publish_csv(stack, tmp_path, csv_text(students), seed)
        await stack.wait_job(seed.job_id, timeout=60)
        roster = replace(spec_for(campus.id, source="half a roster"), full_roster=True)
        await publish_csv(stack, tmp_path, csv_text(students[:2]), roster)  # would archive 2 of 4: held
        held = await stack.wait_job(
            roster.job_id, timeout=60, until=lambda j: j.state == pb.IMPORT_JOB_STATE_HELD
        )
        assert held.hold.archives == 2

        async def mailed() -> Any:
            return [
                m
                for m in smtp.collector.messages
                if desk in str(m["To"]) and roster.job_id in str(m["Subject"])
            ]

        [mail] = await eventually(mailed, timeout=60, what="the held-job mail at the careers desk")
        assert "held" in str(mail["Subject"])
        assert f"rollcall import hold {roster.job_id}" in text_of(mail)
