"""Issue 10's notification mails on the in-memory unit of work: the student's "waiting", "approved"
and "declined" mails queued in the transaction of the change (single and batch decisions, a file's
approval), the school's muted kinds, the pending digest at most hourly on an injected clock (and the
``rollcall_pending_oldest_seconds`` gauge), and import-job events turned into mail once per event id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from identity_service.domain.mail import MailKind, OutgoingMail
from identity_service.domain.notifications import JobCounts, JobHoldFigures, JobNotice, NotificationKind
from identity_service.domain.passwords import PasswordHasher
from identity_service.domain.student_file import ImportMode, IncomingRow, RowOutcome
from identity_service.service import accounts, notifications, pending, schools
from identity_service.service.hashing import AsyncPasswordHasher
from identity_service.service.models import School
from identity_service.service.pending_digest import DigestConfig, PendingDigest
from identity_service.service.student_file import RowBatchRequest, apply_student_rows
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller
from shared.settings import Role
from tests.unit.identity_service.fakes import FakeDatabase
from tests.unit.identity_service.test_use_cases import ADMIN, staff_of

WEB = Caller("web", Role.PLATFORM)


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture(scope="module")
def hasher() -> AsyncPasswordHasher:
    return AsyncPasswordHasher(PasswordHasher(time_cost=1, memory_cost_kib=8, parallelism=1))


async def campus(db: FakeDatabase, notify: Sequence[str] = ("office@uni.example",)) -> School:
    return await schools.create_school(
        db.factory(), ADMIN, "Northfield", ["uni.example"], False, "", notify_emails=list(notify)
    )


async def mute(db: FakeDatabase, school: School, *kinds: NotificationKind) -> School:
    return await schools.update_school(
        db.factory(), ADMIN, school.id, ["muted_notifications"], "", muted_notifications=list(kinds)
    )


async def sign_up(
    db: FakeDatabase, hasher: AsyncPasswordHasher, school: School, name: str = "cy", request_id: str = ""
) -> Any:
    return await accounts.sign_up_student(
        db.factory(),
        hasher,
        WEB,
        school_id=school.id,
        email=f"{name}@gmail.example",
        first_name=name.title(),
        last_name="Po",
        password="a long enough passphrase",
        request_id=request_id,
    )


def queued(db: FakeDatabase, kind: str | None = None) -> list[OutgoingMail]:
    mails = [row["mail"] for _, row in sorted(db.outbox.items())]
    return [m for m in mails if kind is None or m.kind == kind]


# ---- to a student ---------------------------------------------------------------------------------


async def test_sign_up_queues_the_waiting_mail_and_notes_the_request(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school = await campus(db)
    student = await sign_up(db, hasher, school, request_id="s-1")
    [mail] = queued(db)
    assert (mail.to, mail.kind, mail.user_id, mail.school_id) == (
        "cy@gmail.example",
        MailKind.STUDENT_WAITING,
        student.id,
        school.id,
    )
    assert mail.subject == "Your request is waiting for Northfield"
    assert "Hello Cy," in mail.body and "cy@gmail.example" in mail.body
    assert db.pending_items == {student.id: school.id}
    again = await sign_up(db, hasher, school, request_id="s-1")  # a replay queues nothing more
    assert again.id == student.id and len(queued(db)) == 1


async def test_a_school_that_muted_waiting_mails_gets_none_but_its_digest_still_counts(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school = await mute(db, await campus(db), NotificationKind.STUDENT_WAITING)
    student = await sign_up(db, hasher, school)
    assert queued(db) == [] and db.pending_items == {student.id: school.id}


async def test_a_request_deleted_before_its_mail_went_out_is_not_told_it_waits(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school = await campus(db)
    staff = await staff_of(db, school.id)
    student = await sign_up(db, hasher, school)
    await pending.delete_pending_student(db.factory(), staff, student.id, "")
    [row] = db.outbox.values()
    assert (row["mail"].kind, row["status"], row["body"]) == (MailKind.STUDENT_WAITING, "ABANDONED", "")


async def test_approve_and_decline_queue_one_mail_each_in_their_transaction(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school = await campus(db)
    staff = await staff_of(db, school.id)
    ann, bob = await sign_up(db, hasher, school, "ann"), await sign_up(db, hasher, school, "bob")
    await pending.approve_student(db.factory(), staff, ann.id, "checked", "a-1")
    await pending.decline_student(db.factory(), staff, bob.id, "not ours", "")
    [approved] = queued(db, MailKind.STUDENT_APPROVED)
    [declined] = queued(db, MailKind.STUDENT_DECLINED)
    assert (approved.to, approved.user_id) == ("ann@gmail.example", ann.id)
    assert approved.subject == "Northfield: your request was approved" and "Sign in" in approved.body
    assert (declined.to, declined.subject) == ("bob@gmail.example", "Northfield: your request was declined")
    assert "not ours" not in declined.body  # staff's reason is an internal note
    await pending.approve_student(db.factory(), staff, ann.id, "checked", "a-1")  # replay: no new mail
    with pytest.raises(RollcallError) as caught:  # refused: rolled back, nothing queued
        await pending.approve_student(db.factory(), staff, bob.id, "", "")
    assert caught.value.reason is Reason.NOT_PENDING
    assert len(queued(db, MailKind.STUDENT_APPROVED)) == 1 and len(queued(db, MailKind.STUDENT_DECLINED)) == 1


async def test_batch_decisions_queue_one_mail_per_student_decided(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school = await campus(db)
    staff = await staff_of(db, school.id)
    students = [await sign_up(db, hasher, school, f"s{n}") for n in range(4)]
    ids = [s.id for s in students]
    before = len(queued(db))
    results = await pending.batch_approve_students(
        db.factory(), staff, school.id, [ids[0], ids[1], ids[0], "oops"], "", "b-1"
    )
    assert [r.error_reason for r in results] == ["", "", Reason.INVALID_ARGUMENT, Reason.INVALID_ARGUMENT]
    approved = queued(db, MailKind.STUDENT_APPROVED)
    assert sorted(m.user_id for m in approved) == sorted(ids[:2]) and len(queued(db)) == before + 2
    await pending.batch_decline_students(db.factory(), staff, school.id, ids[1:], "no", "")
    declined = queued(db, MailKind.STUDENT_DECLINED)
    assert sorted(m.user_id for m in declined) == sorted(ids[2:])  # ids[1] was no longer pending
    await pending.batch_approve_students(
        db.factory(), staff, school.id, [ids[0], ids[1], ids[0], "oops"], "", "b-1"
    )
    assert len(queued(db, MailKind.STUDENT_APPROVED)) == 2  # the replay decides and mails nothing


async def test_a_school_that_muted_decisions_tells_no_student(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school = await campus(db)
    staff = await staff_of(db, school.id)
    ann, bob, cy = [await sign_up(db, hasher, school, n) for n in ("ann", "bob", "cy")]
    await mute(db, school, NotificationKind.STUDENT_DECIDED)
    await pending.approve_student(db.factory(), staff, ann.id, "", "")
    await pending.batch_decline_students(db.factory(), staff, school.id, [bob.id, cy.id], "", "")
    assert queued(db, MailKind.STUDENT_APPROVED) == queued(db, MailKind.STUDENT_DECLINED) == []


def rows_request(school_id: str, rows: list[IncomingRow], *, dry_run: bool = False) -> RowBatchRequest:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return RowBatchRequest(
        school_id, f"job-{uuid.uuid4().hex[:6]}", when, ImportMode.MANUAL_FILE, False, dry_run, rows
    )


async def test_a_file_approving_a_pending_student_tells_them_but_a_dry_run_does_not(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school = await campus(db)
    student = await sign_up(db, hasher, school, "dee")
    row = IncomingRow(1, student.email, student.email, "Dee", "Po")
    dry = await apply_student_rows(db.factory(), rows_request(school.id, [row], dry_run=True), "importer")
    assert dry[0].approved and queued(db, MailKind.STUDENT_APPROVED) == []
    [result] = await apply_student_rows(db.factory(), rows_request(school.id, [row]), "importer")
    assert (result.outcome, result.approved) == (RowOutcome.UPDATED, True)
    [mail] = queued(db, MailKind.STUDENT_APPROVED)
    assert (mail.to, mail.user_id) == (student.email, student.id)
    other = IncomingRow(1, "eve@uni.example", "eve@uni.example", "Eve", "Po")  # created, not approved
    await apply_student_rows(db.factory(), rows_request(school.id, [other]), "importer")
    assert len(queued(db, MailKind.STUDENT_APPROVED)) == 1


# ---- the school's settings -------------------------------------------------------------------------


async def test_staff_switch_kinds_off_and_on_audited_like_the_other_settings(db: FakeDatabase) -> None:
    school = await campus(db)
    staff = await staff_of(db, school.id)
    kinds = [NotificationKind.JOB_HELD, NotificationKind.PENDING_DIGEST, NotificationKind.JOB_HELD]
    muted = await schools.update_school(
        db.factory(), staff, school.id, ["muted_notifications"], "m-1", muted_notifications=kinds
    )
    assert muted.muted_notifications == ("PENDING_DIGEST", "JOB_HELD")  # once each, in kind order
    assert db.audit[-1].action == "school.updated"
    assert db.audit[-1].details == {"muted_notifications": [[], ["PENDING_DIGEST", "JOB_HELD"]]}
    events = len(db.audit)
    await schools.update_school(  # the same list again changes nothing and writes no event
        db.factory(), staff, school.id, ["muted_notifications"], "", muted_notifications=kinds
    )
    assert len(db.audit) == events
    on = await schools.update_school(db.factory(), staff, school.id, ["muted_notifications"], "")
    assert on.muted_notifications == ()


async def test_a_kind_that_is_not_one_names_its_position(db: FakeDatabase) -> None:
    school = await campus(db)
    with pytest.raises(RollcallError) as caught:
        await schools.update_school(
            db.factory(),
            ADMIN,
            school.id,
            ["muted_notifications"],
            "",
            muted_notifications=[NotificationKind.JOB_HELD, None],
        )
    assert [v.field for v in caught.value.violations] == ["school.muted_notifications[1]"]
    assert db.schools[school.id].muted_notifications == ()


# ---- the pending digest ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def oldest_gauge() -> float:
    return REGISTRY.get_sample_value("rollcall_pending_oldest_seconds") or 0.0


async def test_the_digest_comes_at_most_hourly_and_only_with_new_requests(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school = await campus(db, ["office@uni.example", "dean@uni.example"])
    clock = Clock()
    digest = PendingDigest(db.factory(), DigestConfig(), clock)
    assert (await digest.run_once()).digests == 0  # nobody waits
    await sign_up(db, hasher, school, "ann")
    await sign_up(db, hasher, school, "bob")
    clock.advance(minutes=30, seconds=20)
    first = await digest.run_once()
    assert (first.digests, first.mails) == (1, 2)
    mails = queued(db, MailKind.PENDING_DIGEST)
    assert sorted(m.to for m in mails) == ["dean@uni.example", "office@uni.example"]
    assert mails[0].subject == "Northfield: 2 new requests waiting for approval"
    assert "2 requests are waiting" in mails[0].body and "the oldest has waited 30 minutes" in mails[0].body
    assert 1810 <= first.oldest_pending_seconds <= 1830 and oldest_gauge() == first.oldest_pending_seconds

    await sign_up(db, hasher, school, "cy")
    clock.advance(minutes=59)
    assert (await digest.run_once()).digests == 0  # within the hour: it waits
    clock.advance(minutes=2)
    second = await digest.run_once()
    assert second.digests == 1
    latest = queued(db, MailKind.PENDING_DIGEST)[-1]
    assert latest.subject == "Northfield: 1 new request waiting for approval"
    assert "3 requests are waiting" in latest.body and "1 hour 31 minutes" in latest.body

    clock.advance(hours=3)
    assert (await digest.run_once()).digests == 0  # nothing new since: nothing sent
    assert len(queued(db, MailKind.PENDING_DIGEST)) == 4


async def test_requests_decided_before_the_digest_are_not_new_and_muted_schools_get_none(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school = await campus(db)
    staff = await staff_of(db, school.id)
    ann = await sign_up(db, hasher, school, "ann")
    await pending.approve_student(db.factory(), staff, ann.id, "", "")
    digest = PendingDigest(db.factory(), DigestConfig(), Clock())
    assert (await digest.run_once()).digests == 0 and db.pending_items == {}
    await mute(db, school, NotificationKind.PENDING_DIGEST)
    await sign_up(db, hasher, school, "bob")
    assert (await digest.run_once()).digests == 0 and db.pending_items == {}  # dropped, not kept
    await mute(db, school)
    assert (await digest.run_once()).digests == 0  # switching it on again sends no backlog
    assert queued(db, MailKind.PENDING_DIGEST) == []
    silent = await campus(db, notify=())  # nobody to tell
    await sign_up(db, hasher, silent, "cy")
    assert (await digest.run_once()).digests == 0 and queued(db, MailKind.PENDING_DIGEST) == []


async def test_the_gauge_is_zero_when_nobody_waits(db: FakeDatabase) -> None:
    digest = PendingDigest(db.factory(), DigestConfig(), Clock())
    assert (await digest.run_once()).oldest_pending_seconds == 0 and oldest_gauge() == 0


# ---- import-job events ----------------------------------------------------------------------------


def held(school_id: str, event_id: str = "ev-1") -> JobNotice:
    return JobNotice(
        event_id=event_id,
        event_type="import_job.held",
        job_id="sis-2026-12-01",
        school_id=school_id,
        source_name="students.csv",
        held=True,
        completed=False,
        dry_run=False,
        total_rows=10,
        counts=JobCounts(updated=3),
        hold=JobHoldFigures(3, 0, 10, 10),
    )


def completed(school_id: str, failed: int, event_id: str = "ev-2") -> JobNotice:
    return JobNotice(
        event_id=event_id,
        event_type="import_job.completed",
        job_id="sis-2026-12-02",
        school_id=school_id,
        source_name="students.csv",
        held=False,
        completed=True,
        dry_run=False,
        total_rows=100,
        counts=JobCounts(created=90, failed=failed, skipped=10 - failed),
    )


async def test_a_held_job_mails_each_notify_address_once_per_event(db: FakeDatabase) -> None:
    school = await campus(db, ["office@uni.example", "dean@uni.example"])
    assert await notifications.job_event(db.factory(), held(school.id)) == 2
    mails = queued(db, MailKind.JOB_HELD)
    assert sorted(m.to for m in mails) == ["dean@uni.example", "office@uni.example"]
    assert mails[0].subject == "Northfield: import job sis-2026-12-01 is held for review"
    body = mails[0].body
    assert "sensitive changes: 3 students" in body and "30.0 % of the school's 10 students" in body
    assert "threshold:         10 %" in body and '"students.csv"' in body
    for command in ("import hold", "import release", "import discard"):
        assert f"rollcall {command} sis-2026-12-01" in body
    assert await notifications.job_event(db.factory(), held(school.id)) == 0  # the same event again
    assert len(queued(db)) == 2 and db.notified_events["ev-1"] == ("import_job.held", "sis-2026-12-01", 2)


async def test_a_completed_job_mails_only_when_rows_failed(db: FakeDatabase) -> None:
    school = await campus(db)
    assert await notifications.job_event(db.factory(), completed(school.id, 0, "ev-clean")) == 0
    assert db.notified_events == {}  # nothing to tell, nothing recorded
    assert await notifications.job_event(db.factory(), completed(school.id, 4)) == 1
    [mail] = queued(db, MailKind.JOB_FAILED_ROWS)
    assert mail.subject == "Northfield: import job sis-2026-12-02 finished with 4 failed rows"
    assert "created 90, updated 0, unchanged 0, skipped 6, failed 4" in mail.body
    assert "rollcall import failed sis-2026-12-02 --csv failed.csv" in mail.body
    assert "rollcall import retry sis-2026-12-02 --wait" in mail.body


async def test_muted_unknown_or_unaddressed_schools_get_no_job_mail(db: FakeDatabase) -> None:
    school = await mute(db, await campus(db), NotificationKind.JOB_HELD, NotificationKind.JOB_FAILED_ROWS)
    assert await notifications.job_event(db.factory(), held(school.id, "a")) == 0
    assert await notifications.job_event(db.factory(), completed(school.id, 3, "b")) == 0
    assert await notifications.job_event(db.factory(), held(str(uuid.uuid4()), "c")) == 0
    silent = await campus(db, notify=())
    assert await notifications.job_event(db.factory(), held(silent.id, "d")) == 0
    assert queued(db) == [] and sorted(db.notified_events) == ["a", "b", "c", "d"]


async def test_a_held_event_of_a_job_no_longer_held_tells_nothing(db: FakeDatabase) -> None:
    school = await campus(db)
    notice = held(school.id)
    stale = JobNotice(**{**notice.__dict__, "held": False, "completed": True})
    assert await notifications.job_event(db.factory(), stale) == 0 and queued(db) == []
