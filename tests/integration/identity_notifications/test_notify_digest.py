"""The pending digest against PostgreSQL and SMTP: new requests told to the school's notify_emails at
most hourly (the digest's clock is moved, nobody waits an hour), with the count and the oldest
request's age, nothing when nothing is new; two couriers at once send one digest; the
``rollcall_pending_oldest_seconds`` gauge."""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import REGISTRY

from identity_service.bootstrap import build_pending_digest
from identity_service.domain.mail import MailKind
from identity_service.service.courier import Courier
from identity_service.service.pending_digest import DigestConfig, PendingDigest
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from tests.integration.identity.identity_support import IdentityClient
from tests.integration.identity_mail.mail_helpers import SmtpServer
from tests.integration.identity_notifications.notify_support import (
    Clock,
    deliver,
    mails_to,
    notify_campus,
    outbox_count,
    running,
    subject_of,
    text_of,
    wait_outbox,
)


async def test_the_digest_tells_new_requests_at_most_hourly(
    identity: IdentityClient,
    courier: Courier,
    digest: PendingDigest,
    clock: Clock,
    mail_server: SmtpServer,
) -> None:
    campus, notify = await notify_campus(identity)
    school = campus.school
    first = [await identity.sign_up(campus) for _ in range(3)]
    await identity.stub.ApproveStudent(
        pb.ApproveStudentRequest(user_id=first[2].id), metadata=campus.staff_md
    )
    clock.advance(minutes=20)
    await digest.run_once()
    await deliver(courier)
    for address in notify:
        [mail] = mails_to(mail_server, address)
        assert subject_of(mail) == f"{school.name}: 2 new requests waiting for approval"
        body = text_of(mail)
        assert "2 requests are waiting for a decision; the oldest has waited 20 minutes" in body
        assert f"rollcall school set {school.id} --mute pending_digest" in body

    await identity.sign_up(campus)
    clock.advance(minutes=30)
    await digest.run_once()  # new, but only 30 minutes after the last digest: it waits
    assert await outbox_count(identity, school.id, MailKind.PENDING_DIGEST) == 2
    clock.advance(minutes=31)
    await digest.run_once()
    await deliver(courier)
    latest = mails_to(mail_server, notify[0])[-1]
    assert subject_of(latest) == f"{school.name}: 1 new request waiting for approval"
    assert "3 requests are waiting for a decision; the oldest has waited 1 hour 21 minutes" in text_of(latest)

    clock.advance(hours=5)
    await digest.run_once()  # nothing new since: nothing sent
    await deliver(courier)
    assert [len(mails_to(mail_server, a)) for a in notify] == [2, 2]


async def test_two_couriers_digesting_at_once_send_one_digest(
    identity: IdentityClient, notify_db_url: str, clock: Clock
) -> None:
    campus, _ = await notify_campus(identity, addresses=1)
    for _ in range(4):
        await identity.sign_up(campus)
    pools = [await asyncpg.create_pool(notify_db_url, min_size=1, max_size=3) for _ in range(4)]
    try:
        digests = [build_pending_digest(pool, DigestConfig(), clock) for pool in pools]
        rounds = await asyncio.gather(*(d.run_once() for d in digests))
    finally:
        for pool in pools:
            await pool.close()
    assert await outbox_count(identity, campus.school.id, MailKind.PENDING_DIGEST) == 1
    assert sum(r.mails for r in rounds if r.digests) >= 1
    row = await identity.db.fetchrow(
        "SELECT last_count FROM pending_digests WHERE school_id = $1", campus.school.id
    )
    assert row["last_count"] == 4
    assert (
        await identity.count(
            "SELECT count(*) FROM pending_digest_items WHERE school_id = $1", campus.school.id
        )
        == 0
    )


async def test_the_timer_runs_in_the_courier_loop_and_sets_the_oldest_pending_gauge(
    identity: IdentityClient, digest: PendingDigest, clock: Clock
) -> None:
    campus, _ = await notify_campus(identity, addresses=1)
    await identity.sign_up(campus)
    oldest = await identity.db.fetchval("SELECT min(create_time) FROM users WHERE status = 'PENDING'")
    clock.advance(days=2)
    async with running(digest.run):
        await wait_outbox(identity, campus.school.id, MailKind.PENDING_DIGEST, 1)
    gauge = REGISTRY.get_sample_value("rollcall_pending_oldest_seconds")
    expected = (clock() - oldest).total_seconds()
    assert gauge is not None and abs(gauge - expected) < 60 and gauge > 2 * 86_400 - 60
