"""Issue 10's events under faults, with two replicas of identity's relay: the leading relay is
SIGKILLed mid-stream and the broker is down for 30 s while changes go on. Every event of the story
arrives; copies of one event are identical (same id, type, subject, sequence); once deduplicated by
id, each subject's events arrive in sequence order — the replicas never reorder a subject."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Sequence
from typing import Any

import aio_pika
import pytest

from shared.amqp.topology import Topology, declare_events
from shared.events.publisher import decode
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from tests.e2e.system.system_support import Campus, connector, end_message, header, new_campus, rows_message
from tests.faults.fault_support import broker_restored, broker_start, broker_stop, rabbitmqctl_available
from tests.process_stack import IDENTITY_RELAY, ProcessStack, eventually, process_stack

pytestmark = pytest.mark.faults
STUDENTS = 2_000
TOGGLED = 300
OUTAGE_SECONDS = 30.0


class Heard:
    """A platform's consumer: a durable queue of its own bound to every event (it outlives a broker
    restart), every delivery kept in arrival order."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, str, str, int]] = []

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = decode(message.body, message.content_type or "")
        assert message.message_id == event.id
        self.arrivals.append((event.id, event.type, event.subject, event.sequence))
        await message.ack()

    def of(self, subjects: set[str]) -> list[tuple[str, str, str, int]]:
        return [a for a in self.arrivals if a[2] in subjects]


async def _leader(stack: ProcessStack, names: Sequence[str]) -> str:
    """The relay replica that leads: the process named by the advisory lock holder's connection."""
    async with stack.identity_db() as db:
        holders = [
            row["application_name"]
            for row in await db.fetch(
                """SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE l.locktype = 'advisory' AND l.objid = 7101 AND l.granted"""
            )
        ]
    assert len(holders) == 1, f"one relay leads, not {holders}"
    pid = int(holders[0].rsplit(":", 1)[1])
    return next(name for name in names if stack.services[name].pid == pid)


async def _toggle(stack: ProcessStack, campus: Campus, user_ids: Sequence[str], enabled: bool) -> None:
    slots = asyncio.Semaphore(16)

    async def one(user_id: str) -> None:
        async with slots:
            await stack.identity.SetFileUpdates(
                ipb.SetFileUpdatesRequest(user_id=user_id, enabled=enabled),
                metadata=campus.staff_md,
                timeout=30,
            )

    await asyncio.gather(*(one(u) for u in user_ids))


async def test_relay_killed_and_broker_down_30s_every_event_arrives_in_per_subject_order(
    pg_server_url: str, amqp_url: str, amqp_prefix: str
) -> None:
    if not rabbitmqctl_available():
        pytest.fail("the events fault test stops the local RabbitMQ with rabbitmqctl, which is not here")
    prefix = f"{amqp_prefix}_fev{uuid.uuid4().hex[:4]}"
    relays = [IDENTITY_RELAY, f"{IDENTITY_RELAY}-2"]
    async with (
        broker_restored(amqp_url),
        process_stack(pg_server_url, amqp_url, prefix, relays=True, identity_relays=2) as stack,
    ):
        heard = Heard()
        consumer = await aio_pika.connect_robust(amqp_url, reconnect_interval=1)
        try:
            channel = await consumer.channel()
            exchange = await declare_events(channel, Topology(prefix))
            queue = await channel.declare_queue(
                f"{prefix}.platform", durable=True, arguments={"x-queue-type": "quorum"}
            )
            await queue.bind(exchange, routing_key="#")
            await queue.consume(heard.on_message)

            campus = await new_campus(stack, "Faulty Events University")
            tag = uuid.uuid4().hex[:6]
            job = header(campus.id)
            students = [
                rows_pb.StudentRow(
                    row_number=n, username=f"{tag}-{n}", email_address=f"{tag}-{n}@uni.example"
                )
                for n in range(1, STUDENTS + 1)
            ]
            async with connector(stack) as sis:
                for start in range(0, STUDENTS, 500):
                    await sis.send(rows_message(job, students[start : start + 500]))
                await sis.send(end_message(job, STUDENTS))
            await stack.wait_job(job.job_id, timeout=120)
            async with stack.identity_db() as db:
                ids = [
                    r["id"]
                    for r in await db.fetch(
                        """SELECT id::text AS id FROM users
                           WHERE school_id = $1::uuid AND user_type = 'STUDENT' ORDER BY id""",
                        campus.id,
                    )
                ]
            subjects = {campus.id, campus.staff.id, *ids}

            await eventually(lambda: _at_least(heard, subjects, 300), timeout=60, what="300 events heard")
            leader = await _leader(stack, relays)
            assert await stack.stop(leader, signal.SIGKILL) == -signal.SIGKILL
            heard_at_kill = len(heard.of(subjects))
            assert heard_at_kill < STUDENTS, "the kill came after the stream (nothing was mid-way)"
            await stack.start(leader)

            toggled = ids[:TOGGLED]
            await _toggle(stack, campus, toggled, False)
            await broker_stop()
            try:
                await _toggle(stack, campus, toggled, True)  # changes go on while the broker is away
                await asyncio.sleep(OUTAGE_SECONDS)
            finally:
                await broker_start(amqp_url)

            async with stack.identity_db() as db:
                expected = {
                    r["id"]: (r["id"], r["type"], r["subject"], r["sequence"])
                    for r in await db.fetch(
                        """SELECT id::text AS id, type, subject, sequence FROM event_outbox
                           WHERE subject = ANY($1)""",
                        list(subjects),
                    )
                }
            assert len(expected) == 1 + 1 + STUDENTS + 2 * TOGGLED  # the school, its staff, created, toggles

            async def all_heard() -> bool:
                return {a[0] for a in heard.of(subjects)} >= set(expected)

            await eventually(all_heard, timeout=180, what="every event heard after the faults")
        finally:
            await consumer.close()

    arrivals = heard.of(subjects)
    for arrival in arrivals:
        assert arrival == expected[arrival[0]], "a copy differs from its event"
    first: dict[str, tuple[str, str, str, int]] = {}
    for arrival in arrivals:
        first.setdefault(arrival[0], arrival)
    by_subject: dict[str, list[int]] = {}
    for _, _, subject, sequence in first.values():  # dict order: first arrival order
        by_subject.setdefault(subject, []).append(sequence)
    wrong = {s: seqs for s, seqs in by_subject.items() if seqs != sorted(seqs)}
    assert not wrong, f"subjects out of order: {list(wrong.items())[:5]}"
    assert all(len(seqs) == 3 for s, seqs in by_subject.items() if s in set(toggled))


async def _at_least(heard: Heard, subjects: set[str], count: int) -> Any:
    return len(heard.of(subjects)) >= count
