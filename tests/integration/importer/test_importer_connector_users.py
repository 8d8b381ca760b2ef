"""Connectors write only for their schools, with real RabbitMQ users (issue 7): the broker checks
``user_id`` against the connection's user and the example topic permissions
(deploy/rabbitmq/connectors.example.json), and the import service accepts a school's rows only
from a connector ROLLCALL_CONNECTORS allows for it — even where the broker's permissions are wider
than they should be."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest

from shared.amqp.topology import Topology
from tests.integration.importer.importer_support import (
    AppFactory,
    FakeIdentity,
    eventually,
    job_header,
    student_rows,
)
from tests.integration.importer.test_importer_dead_letters import REASON, _dead_letters, _with_rows


def _ctl(*args: str) -> None:
    assert shutil.which("rabbitmqctl"), "these tests manage broker users with rabbitmqctl"
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


async def _user(name: str, password: str, topology: Topology, routing_keys: str) -> None:
    """A connector's broker user: may write only to the import exchange, with ``routing_keys``."""
    await asyncio.to_thread(_ctl, "add_user", name, password)
    await asyncio.to_thread(_ctl, "set_permissions", "-p", "/", name, "^$", f"^{topology.exchange}$", "^$")
    await asyncio.to_thread(
        _ctl, "set_topic_permissions", "-p", "/", name, topology.exchange, routing_keys, "^$"
    )


def _as(amqp_url: str, user: str, password: str) -> str:
    parts = urlsplit(amqp_url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5672}"))


@pytest.fixture
async def connector_users(import_topology: Topology) -> AsyncIterator[dict[str, str]]:
    """Two connector users: ``strict`` may route only ``rows.<school B>`` (the example permissions),
    ``loose`` any routing key (a broker set up too widely)."""
    tag = uuid.uuid4().hex[:8]
    school_b = str(uuid.uuid4())
    users = {"strict": f"rc_sis_strict_{tag}", "loose": f"rc_sis_loose_{tag}", "school_b": school_b}
    await _user(users["strict"], "pw-strict", import_topology, f"^rows\\.{school_b}$")
    await _user(users["loose"], "pw-loose", import_topology, ".*")
    try:
        yield users
    finally:
        for name in (users["strict"], users["loose"]):
            await asyncio.to_thread(_ctl, "delete_user", name)


async def _publish(url: str, exchange: str, message: aio_pika.Message, routing_key: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange, ensure=False)
        await target.publish(message, routing_key=routing_key, timeout=10)
    finally:
        await connection.close()


def _message(body: bytes, user_id: str | None) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type="application/x-protobuf",
        message_id=str(uuid.uuid4()),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        user_id=user_id,
    )


async def test_a_connector_writes_its_school_and_nobody_elses(
    make_app: AppFactory,
    fake_identity: FakeIdentity,
    connector_users: dict[str, str],
    import_topology: Topology,
    broker: aio_pika.abc.AbstractConnection,
    amqp_url: str,
) -> None:
    strict, loose, school_b = connector_users["strict"], connector_users["loose"], connector_users["school_b"]
    school_a = str(uuid.uuid4())
    allowed = f"{strict}:{school_b},{loose}:{school_b}"
    async with make_app(connectors=allowed) as app:
        # the example permissions: the strict connector publishes its own school's file
        own = job_header(school_b)
        strict_url = _as(amqp_url, strict, "pw-strict")
        await _publish(
            strict_url,
            import_topology.exchange,
            _message(_with_rows(own, student_rows(3)).SerializeToString(), strict),
            f"rows.{school_b}",
        )

        async def applied() -> bool:
            job = await app.store.jobs.get(own.job_id)
            return job is not None and job.rows_recorded == 3

        await eventually(applied, what="the connector's own school's rows recorded")

        # ... the broker refuses it another school's routing key, and a forged user_id
        with pytest.raises(aio_pika.exceptions.ChannelClosed):
            await _publish(strict_url, import_topology.exchange, _message(b"x", strict), f"rows.{school_a}")
        with pytest.raises(aio_pika.exceptions.ChannelClosed):
            await _publish(strict_url, import_topology.exchange, _message(b"x", "guest"), f"rows.{school_b}")

        # a broker set up too widely: the import service still refuses school A's rows from it
        other = job_header(school_a)
        message = _message(_with_rows(other, student_rows(3)).SerializeToString(), loose)
        await _publish(
            _as(amqp_url, loose, "pw-loose"), import_topology.exchange, message, f"rows.{school_a}"
        )
        letters = await _dead_letters(broker, import_topology, {message.message_id or ""})
        assert letters[message.message_id].headers[REASON] == "CONNECTOR_NOT_ALLOWED"
        assert await app.store.jobs.get(other.job_id) is None
        assert not any(school == school_a for school, _ in fake_identity.seen), "nothing applied for A"
