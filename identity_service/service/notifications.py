"""Notification mails queued by the use cases, in the transaction of the change they tell about
(product.md "Notifications by mail"; the templates and kinds are ``domain/notifications.py``).

- ``SignUpStudent`` → ``student_waiting``: the request is noted for the school's next pending digest
  and, unless the school muted STUDENT_WAITING, the student is told it waits for the school;
- ``ApproveStudent`` / ``DeclineStudent`` and their batches, and a student file approving a pending
  student → ``students_decided``: one mail per student decided, unless the school muted
  STUDENT_DECIDED;
- ``import_job.held`` / ``import_job.completed`` events (the courier's consumer) → ``job_event``: at
  most one mail per notify address, once per event id.

Every mail goes through the outbox (``uow.outbox``): the courier sends it after the commit, once,
with the code mails' lease, backoff and abandonment rules; a rolled-back change queues nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from identity_service.domain.mail import MailKind, OutgoingMail
from identity_service.domain.notifications import (
    JobNotice,
    NotificationKind,
    is_muted,
    job_failed_rows_message,
    job_held_message,
    job_notification,
    student_approved_message,
    student_declined_message,
    student_waiting_message,
)
from identity_service.domain.users import User, UserStatus
from identity_service.service.models import School
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.logging import get_logger

log = get_logger("notifications")


async def student_waiting(uow: UnitOfWork, school: School, student: User) -> None:
    """A student signed up: note the request for the digest; tell the student it waits."""
    await uow.notifications.note_pending(school.id, student.id)
    if is_muted(school.muted_notifications, NotificationKind.STUDENT_WAITING):
        return
    subject, body = student_waiting_message(school.name, student.first_name, student.email)
    await uow.outbox.enqueue(
        OutgoingMail(student.email, subject, body, MailKind.STUDENT_WAITING, school.id, student.id)
    )


async def request_gone(uow: UnitOfWork, user_id: str) -> None:
    """A pending request was deleted or merged away: its "waiting" mail, if not sent yet, never is
    (its digest entry goes with the user)."""
    await uow.outbox.discard_pending(user_id, MailKind.STUDENT_WAITING)


async def students_decided(uow: UnitOfWork, school: School | None, students: Sequence[User]) -> None:
    """Tell each student of ``students`` (after the decision: ACTIVE = approved, DECLINED = declined)
    of the decision, in one statement; nothing when the school muted STUDENT_DECIDED."""
    if school is None or not students:
        return
    if is_muted(school.muted_notifications, NotificationKind.STUDENT_DECIDED):
        return
    mails = []
    for student in students:
        if student.status is UserStatus.ACTIVE:
            subject, body = student_approved_message(school.name, student.first_name, student.email)
            kind = MailKind.STUDENT_APPROVED
        elif student.status is UserStatus.DECLINED:
            subject, body = student_declined_message(school.name, student.first_name, student.email)
            kind = MailKind.STUDENT_DECLINED
        else:
            continue
        mails.append(OutgoingMail(student.email, subject, body, kind, school.id, student.id))
    await uow.outbox.enqueue_many(mails)


async def students_approved_by_file(
    uow: UnitOfWork, school: School, approved: Sequence[tuple[str, str, str]]
) -> None:
    """Tell students a student file approved — (user id, first name, email) each — that they are
    approved (STUDENT_DECIDED, like a staff approval)."""
    if not approved or is_muted(school.muted_notifications, NotificationKind.STUDENT_DECIDED):
        return
    mails = []
    for user_id, first_name, email in approved:
        subject, body = student_approved_message(school.name, first_name, email)
        mails.append(OutgoingMail(email, subject, body, MailKind.STUDENT_APPROVED, school.id, user_id))
    await uow.outbox.enqueue_many(mails)


async def job_event(new_uow: UnitOfWorkFactory, notice: JobNotice) -> int:
    """Turn one ``import_job.*`` event into mail to the school's notify_emails (one per address), in
    one transaction with the event's id, so the same event delivered again queues nothing. Returns
    how many mails were queued (0: not a notification, a repeat, muted, nobody to tell)."""
    kind = job_notification(notice)
    if kind is None:  # a job completed without failed rows: nothing to tell
        return 0
    async with new_uow() as uow:
        school = await uow.schools.get(notice.school_id)
        mails = _job_mails(kind, school, notice) if school is not None else []
        subject = notice.job_id or notice.school_id
        if not await uow.notifications.claim_event(notice.event_id, notice.event_type, subject, len(mails)):
            log.info("notification.repeated_event", event_id=notice.event_id, job_id=notice.job_id)
            return 0
        await uow.outbox.enqueue_many(mails)
    log.info(
        "notification.job_event",
        event_id=notice.event_id,
        event_type=notice.event_type,
        job_id=notice.job_id,
        kind=kind.value,
        mails=len(mails),
        school_known=school is not None,
    )
    return len(mails)


def _job_mails(kind: NotificationKind, school: School, notice: JobNotice) -> list[OutgoingMail]:
    if is_muted(school.muted_notifications, kind):
        return []
    if kind is NotificationKind.JOB_HELD:
        subject, body = job_held_message(school.name, school.id, notice)
        mail_kind = MailKind.JOB_HELD
    else:
        subject, body = job_failed_rows_message(school.name, school.id, notice)
        mail_kind = MailKind.JOB_FAILED_ROWS
    return [OutgoingMail(to, subject, body, mail_kind, school.id) for to in school.notify_emails]
