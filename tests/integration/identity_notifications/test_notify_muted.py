"""A school that switched a kind off gets none of it: staff set ``muted_notifications`` through
UpdateSchool's mask (audited like the other settings), and then no sign-up, decision, digest, held or
failed-rows mail is queued or sent for the school; switching a kind on again brings it back."""

from __future__ import annotations

import json

import grpc

from identity_service.adapters.amqp.job_events import JobEventsConsumer
from identity_service.domain.mail import MailKind
from identity_service.service.courier import Courier
from identity_service.service.pending_digest import PendingDigest
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity.identity_support import IdentityClient, invalid, refused
from tests.integration.identity_mail.mail_helpers import SmtpServer, wait_for
from tests.integration.identity_notifications.notify_support import (
    Clock,
    RelayStandIn,
    consuming,
    deliver,
    job_event,
    mails_to,
    notify_campus,
    running,
    update_school,
)

EVERY_KIND = [
    res.NOTIFICATION_KIND_PENDING_DIGEST,
    res.NOTIFICATION_KIND_JOB_HELD,
    res.NOTIFICATION_KIND_JOB_FAILED_ROWS,
    res.NOTIFICATION_KIND_STUDENT_WAITING,
    res.NOTIFICATION_KIND_STUDENT_DECIDED,
]


async def test_staff_switch_kinds_off_through_update_school_audited(identity: IdentityClient) -> None:
    campus, _ = await notify_campus(identity, addresses=1)
    wanted = res.School(
        id=campus.school.id, muted_notifications=[EVERY_KIND[1], EVERY_KIND[0], EVERY_KIND[1]]
    )
    updated = await update_school(identity, campus, wanted, "muted_notifications")
    assert list(updated.muted_notifications) == EVERY_KIND[:2]  # once each, in the enum's order
    got = await identity.stub.GetSchool(pb.GetSchoolRequest(id=campus.school.id), metadata=identity.admin)
    assert list(got.muted_notifications) == EVERY_KIND[:2] and list(got.notify_emails) == list(
        updated.notify_emails
    )
    details = await identity.db.fetchval(
        """SELECT details FROM audit_events WHERE school_id = $1 AND action = 'school.updated'
           ORDER BY id DESC LIMIT 1""",
        campus.school.id,
    )
    found = json.loads(details) if isinstance(details, str) else dict(details)
    assert found == {"muted_notifications": [[], ["PENDING_DIGEST", "JOB_HELD"]]}

    bad = res.School(id=campus.school.id, muted_notifications=[99])  # type: ignore[list-item]
    await invalid(
        identity.stub.UpdateSchool(
            pb.UpdateSchoolRequest(school=bad, update_mask={"paths": ["muted_notifications"]}),
            metadata=campus.staff_md,
        ),
        "school.muted_notifications[0]",
    )
    other = await identity.new_campus()
    await refused(
        identity.stub.UpdateSchool(
            pb.UpdateSchoolRequest(school=wanted, update_mask={"paths": ["muted_notifications"]}),
            metadata=other.staff_md,
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "NOT_STAFF_OF_SCHOOL",
    )


async def test_a_school_that_switched_every_kind_off_gets_none(
    identity: IdentityClient,
    courier: Courier,
    digest: PendingDigest,
    clock: Clock,
    consumer: JobEventsConsumer,
    relay: RelayStandIn,
    mail_server: SmtpServer,
) -> None:
    campus, notify = await notify_campus(identity)
    school_id = campus.school.id
    await update_school(
        identity, campus, res.School(id=school_id, muted_notifications=EVERY_KIND), "muted_notifications"
    )
    students = [await identity.sign_up(campus) for _ in range(4)]
    staff = campus.staff_md
    await identity.stub.ApproveStudent(pb.ApproveStudentRequest(user_id=students[0].id), metadata=staff)
    await identity.stub.DeclineStudent(pb.DeclineStudentRequest(user_id=students[1].id), metadata=staff)
    await identity.stub.BatchApproveStudents(
        pb.BatchApproveStudentsRequest(school_id=school_id, user_ids=[students[2].id]), metadata=staff
    )
    await identity.stub.BatchDeclineStudents(
        pb.BatchDeclineStudentsRequest(school_id=school_id, user_ids=[students[3].id]), metadata=staff
    )
    await identity.sign_up(campus)
    clock.advance(minutes=10)
    await digest.run_once()
    held = job_event(school_id, "import_job.held")
    failed = job_event(school_id, "import_job.completed", failed=5)
    async with running(consumer.run):
        await consuming(consumer)
        await relay.publish([held, failed])
        await wait_for(lambda: _handled(identity, failed.id), timeout=15, what="the events handled")
    await deliver(courier)
    assert await identity.count("SELECT count(*) FROM outbox_messages WHERE school_id = $1", school_id) == 0
    for address in [*notify, *(s.email for s in students)]:
        assert mails_to(mail_server, address) == []

    await update_school(  # on again: the next sign-up is told it waits
        identity,
        campus,
        res.School(id=school_id, muted_notifications=[k for k in EVERY_KIND if k != EVERY_KIND[3]]),
        "muted_notifications",
    )
    late = await identity.sign_up(campus)
    await deliver(courier)
    assert [m["Subject"] for m in mails_to(mail_server, late.email)] == [
        f"Your request is waiting for {campus.school.name}"
    ]
    assert (
        await identity.count(
            "SELECT count(*) FROM outbox_messages WHERE school_id = $1 AND kind <> $2",
            school_id,
            MailKind.STUDENT_WAITING,
        )
        == 0
    )


async def _handled(identity: IdentityClient, event_id: str) -> bool:
    return bool(
        await identity.count("SELECT count(*) FROM notification_events WHERE event_id = $1", event_id)
    )
