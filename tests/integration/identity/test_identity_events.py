"""Issue 10's events, identity side, on real PostgreSQL and RabbitMQ: every committed change writes
its event in its own transaction (a refused change none), numbered per subject, with the subject as
it was right after the change; the relay publishes them to the events exchange in per-subject order
with the CloudEvents headers, in JSON or protobuf; two relays never both lead."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from identity_service.bootstrap import relay_spec
from shared.amqp.topology import Topology, declare_events
from shared.events.publisher import decode
from shared.events.runner import RunningRelay, start_relay
from shared.proto.rollcall.events.v1 import events_pb2 as epb
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows
from shared.settings import Settings
from tests.integration.identity.identity_support import Campus, IdentityClient, unique

NOW = timestamp_pb2.Timestamp(seconds=1_800_000_000)


async def _outbox(identity: IdentityClient, *subjects: str) -> list[tuple[str, str, int]]:
    found = await identity.db.fetch(
        "SELECT subject, type, sequence FROM event_outbox WHERE subject = ANY($1) ORDER BY position",
        list(subjects),
    )
    return [(r["subject"], r["type"], r["sequence"]) for r in found]


async def _story(identity: IdentityClient) -> dict[str, Any]:
    """A school's day: sign-ups decided, a setting changed, a sync that creates and updates."""
    campus = await identity.new_campus()
    staff = campus.staff_md
    approved = await identity.sign_up(campus)
    await identity.stub.ApproveStudent(pb.ApproveStudentRequest(user_id=approved.id), metadata=staff)
    declined = await identity.sign_up(campus)
    await identity.stub.DeclineStudent(pb.DeclineStudentRequest(user_id=declined.id), metadata=staff)
    deleted = await identity.sign_up(campus)
    await identity.stub.DeletePendingStudent(
        pb.DeletePendingStudentRequest(user_id=deleted.id), metadata=staff
    )
    await identity.stub.UpdateSchool(
        pb.UpdateSchoolRequest(
            school=res.School(id=campus.school.id, change_threshold_percent=25),
            update_mask=field_mask_pb2.FieldMask(paths=["change_threshold_percent"]),
        ),
        metadata=staff,
    )
    batch = [
        rows.StudentRow(row_number=1, username="new1", email_address=campus.email("new1"), first_name="N"),
        rows.StudentRow(
            row_number=2, username=approved.username, email_address=approved.email, first_name="Renamed"
        ),
    ]
    reply = await identity.stub.ApplyStudentRows(
        pb.ApplyStudentRowsRequest(
            school_id=campus.school.id,
            job_id=unique("job-"),
            mode=rows.IMPORT_MODE_ONGOING_SYNC,
            rows=batch,
            job_create_time=NOW,
        ),
        metadata=identity.md("importer"),
    )
    created = reply.results[0].user_id
    return {
        "campus": campus,
        "approved": approved.id,
        "declined": declined.id,
        "deleted": deleted.id,
        "created": created,
    }


async def test_every_committed_change_writes_its_event_numbered_per_subject(identity: IdentityClient) -> None:
    s = await _story(identity)
    campus: Campus = s["campus"]
    assert await _outbox(identity, campus.school.id) == [
        (campus.school.id, "school.created", 1),
        (campus.school.id, "school.updated", 2),
    ]
    assert await _outbox(identity, campus.staff.id) == [(campus.staff.id, "user.created", 1)]
    assert await _outbox(identity, s["approved"]) == [
        (s["approved"], "user.created", 1),
        (s["approved"], "user.approved", 2),
        (s["approved"], "user.updated", 3),
    ]
    assert await _outbox(identity, s["declined"]) == [
        (s["declined"], "user.created", 1),
        (s["declined"], "user.declined", 2),
    ]
    assert await _outbox(identity, s["deleted"]) == [
        (s["deleted"], "user.created", 1),
        (s["deleted"], "user.deleted", 2),
    ]
    assert await _outbox(identity, s["created"]) == [(s["created"], "user.created", 1)]
    snapshot = await identity.db.fetchrow(
        "SELECT snapshot, changed_fields FROM event_outbox WHERE subject = $1 AND sequence = 3", s["approved"]
    )
    assert snapshot["changed_fields"] == ["first_name"]
    stored = json.loads(snapshot["snapshot"])
    assert stored["first_name"] == "Renamed" and stored["status"] == "ACTIVE"
    assert not {"password_hash", "password", "email_key"} & set(stored), "never a secret or an internal key"


async def test_a_refused_change_writes_no_event(identity: IdentityClient) -> None:
    campus = await identity.new_campus()
    taken = await identity.new_student(campus)
    before = await identity.count("SELECT count(*) FROM event_outbox")
    with pytest.raises(grpc.aio.AioRpcError):
        await identity.new_student(campus, email=taken.email)
    with pytest.raises(grpc.aio.AioRpcError):  # not pending: refused, nothing changed
        await identity.stub.ApproveStudent(
            pb.ApproveStudentRequest(user_id=taken.id), metadata=campus.staff_md
        )
    assert await _outbox(identity, taken.id) == [(taken.id, "user.created", 1)]
    assert await identity.count("SELECT count(*) FROM event_outbox") >= before


@contextlib.asynccontextmanager
async def _listening(amqp_url: str, prefix: str) -> AsyncIterator[list[aio_pika.abc.AbstractIncomingMessage]]:
    """A queue bound to every event of ``prefix``'s exchange, collecting what arrives."""
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    exchange = await declare_events(channel, Topology(prefix))
    queue = await channel.declare_queue(f"{prefix}.test.{uuid.uuid4().hex[:6]}", exclusive=True)
    await queue.bind(exchange, routing_key="#")
    received: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received.append(message)
        await message.ack()

    await queue.consume(on_message)
    try:
        yield received
    finally:
        await connection.close()


def _relay_settings(identity_db_url: str, amqp_url: str, prefix: str, content_type: str) -> Settings:
    return Settings(
        identity_database_url=identity_db_url,
        amqp_url=amqp_url,
        amqp_prefix=prefix,
        events_content_type=content_type,
        relay_metrics_port=0,
    )


async def _until(condition: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _mine(received: list[Any], subjects: set[str]) -> list[tuple[Any, epb.Event]]:
    found = []
    for message in received:
        event = decode(message.body, message.content_type or "")
        if event.subject in subjects:
            found.append((message, event))
    return found


@pytest.mark.parametrize("content_type", ["application/json", "application/x-protobuf"])
async def test_the_relay_publishes_each_subjects_events_in_order_with_cloud_events_headers(
    identity: IdentityClient, identity_db_url: str, amqp_url: str, content_type: str
) -> None:
    prefix = f"ev{uuid.uuid4().hex[:8]}"
    async with _listening(amqp_url, prefix) as received:
        s = await _story(identity)
        subjects = {s["campus"].school.id, s["approved"], s["declined"], s["deleted"], s["created"]}
        settings = _relay_settings(identity_db_url, amqp_url, prefix, content_type)
        relay: RunningRelay = await start_relay(settings, relay_spec(settings), health=False)
        try:
            await _until(lambda: len(_mine(received, subjects)) >= 10)
        finally:
            await relay.close()
    events = _mine(received, subjects)
    by_subject: dict[str, list[int]] = {}
    for message, event in events:
        by_subject.setdefault(event.subject, []).append(event.sequence)
        headers = message.headers
        assert message.content_type == content_type and message.message_id == event.id
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.routing_key == event.type
        assert headers["cloudEvents:specversion"] == "1.0"
        assert headers["cloudEvents:id"] == event.id
        assert headers["cloudEvents:source"] == "//rollcall/identity"
        assert headers["cloudEvents:type"] == f"rollcall.{event.type}"
        assert headers["cloudEvents:subject"] == event.subject
        assert headers["cloudEvents:sequence"] == str(event.sequence)
        assert headers["cloudEvents:time"].endswith("Z")
    assert all(seqs == sorted(seqs) and len(set(seqs)) == len(seqs) for seqs in by_subject.values()), (
        by_subject
    )
    kinds = {(e.type, e.WhichOneof("payload")) for _, e in events}
    assert ("user.deleted", "user_deleted") in kinds and ("school.updated", "school") in kinds
    approved = next(e for _, e in events if e.subject == s["approved"] and e.type == "user.approved")
    assert approved.user.user.status == res.USER_STATUS_ACTIVE and "status" in approved.user.changed_fields
    assert approved.client == "web" and approved.actor_id == s["campus"].staff.id
    deleted = next(e for _, e in events if e.subject == s["deleted"] and e.type == "user.deleted")
    assert deleted.user_deleted.school_id == s["campus"].school.id
    school = next(e for _, e in events if e.type == "school.updated" and e.subject == s["campus"].school.id)
    assert school.school.school.change_threshold_percent == 25


async def test_two_relays_one_leads_and_the_other_takes_over(
    identity: IdentityClient, identity_db_url: str, amqp_url: str
) -> None:
    prefix = f"ev{uuid.uuid4().hex[:8]}"
    settings = _relay_settings(identity_db_url, amqp_url, prefix, "application/json")
    async with _listening(amqp_url, prefix) as received:
        first = await start_relay(settings, relay_spec(settings), health=False)
        second = await start_relay(settings, relay_spec(settings), health=False)
        try:
            await _until(lambda: first.relay.leading or second.relay.leading)
            await asyncio.sleep(0.5)
            assert first.relay.leading != second.relay.leading, "exactly one leads"
            leader, standby = (first, second) if first.relay.leading else (second, first)
            s = await _story(identity)
            await _until(lambda: len(_mine(received, {s["approved"]})) >= 3)
            await leader.close()
            await _until(lambda: standby.relay.leading, timeout=10)
            later = await identity.sign_up(s["campus"])
            await _until(lambda: len(_mine(received, {later.id})) >= 1)
        finally:
            for relay in (first, second):
                if not relay.stop.is_set():
                    await relay.close()
    sequences = [e.sequence for _, e in _mine(received, {s["approved"]})]
    assert sequences == sorted(sequences)


async def test_an_event_that_names_no_field_is_written_with_an_empty_list(identity: IdentityClient) -> None:
    """An undo's revert audits context only when nothing it names is a User field (no NULL list)."""
    from identity_service.adapters.postgres.events import PostgresEventOutbox
    from identity_service.domain.events import ChangeEvent, EventKind, EventType

    campus = await identity.new_campus()
    student = await identity.new_student(campus)
    async with identity.db.acquire() as conn, conn.transaction():
        await PostgresEventOutbox(conn).enqueue(
            [
                (
                    ChangeEvent(EventType.USER_UPDATED, EventKind.USER, student.id),
                    None,
                    "importer",
                    campus.school.id,
                )
            ]
        )
    row = await identity.db.fetchrow(
        "SELECT changed_fields, sequence FROM event_outbox WHERE subject = $1 ORDER BY sequence DESC LIMIT 1",
        student.id,
    )
    assert (row["changed_fields"], row["sequence"]) == ([], 2)


async def test_the_relay_purges_published_events_after_the_retention_only(identity: IdentityClient) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.events.pg_outbox import RelayOutbox

    campus = await identity.new_campus()
    student = await identity.new_student(campus)
    old, fresh = datetime.now(UTC) - timedelta(days=8), datetime.now(UTC) - timedelta(hours=1)
    rows = await identity.db.fetch(
        "SELECT position FROM event_outbox WHERE subject = ANY($1) ORDER BY position",
        [campus.school.id, student.id],
    )
    positions = [r["position"] for r in rows]
    assert len(positions) == 2  # school.created, user.created (the staff member's is another subject)
    await identity.db.execute(
        "UPDATE event_outbox SET published_time = $2 WHERE position = $1", positions[0], old
    )
    await identity.db.execute(
        "UPDATE event_outbox SET published_time = $2 WHERE position = $1", positions[1], fresh
    )
    unpublished = await identity.db.fetchval(
        "SELECT position FROM event_outbox WHERE subject = $1", campus.staff.id
    )
    await identity.db.execute(
        "UPDATE event_outbox SET published_time = NULL WHERE position = $1", unpublished
    )  # never published: never purged, however old
    async with identity.db.acquire() as conn:
        purged = await RelayOutbox(conn).purge(datetime.now(UTC) - timedelta(days=7), 10_000)
    left = {
        r["position"]
        for r in await identity.db.fetch(
            "SELECT position FROM event_outbox WHERE position = ANY($1)", [*positions, unpublished]
        )
    }
    assert purged >= 1 and left == {positions[1], unpublished}


async def test_a_relay_whose_database_connection_dies_takes_the_lead_again_and_loses_nothing(
    identity: IdentityClient, identity_db_url: str, amqp_url: str
) -> None:
    """The database side of "survives restarts": the leader's connection is terminated by the server
    (as a PostgreSQL restart or failover does); the relay leads again and publishes what follows."""
    prefix = f"ev{uuid.uuid4().hex[:8]}"
    settings = _relay_settings(identity_db_url, amqp_url, prefix, "application/json")
    async with _listening(amqp_url, prefix) as received:
        relay = await start_relay(settings, relay_spec(settings), health=False)
        try:
            before = await _story(identity)
            await _until(lambda: len(_mine(received, {before["approved"]})) >= 3)
            killed = await identity.db.fetchval(
                """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                   WHERE application_name = $1""",
                f"rollcall-relay:{os.getpid()}",
            )
            assert killed == 1
            after = await _story(identity)
            await _until(lambda: len(_mine(received, {after["approved"]})) >= 3, timeout=30)
            assert relay.relay.leading
        finally:
            await relay.close()
    for story in (before, after):
        sequences = [e.sequence for _, e in _mine(received, {story["approved"]})]
        assert sorted(set(sequences)) == [1, 2, 3] and sequences == sorted(sequences)
