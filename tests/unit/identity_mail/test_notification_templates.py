"""The notification templates (domain/notifications.py): plain text a reader understands, subjects
that no value can break into a second header, job ids quoted for the shell, and the pure rules (muted
kinds, which event is which kind, ages)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from identity_service.domain.fields import Violations
from identity_service.domain.notifications import (
    JobCounts,
    JobHoldFigures,
    JobNotice,
    NotificationKind,
    describe_age,
    is_muted,
    job_failed_rows_message,
    job_held_message,
    job_notification,
    muted_notifications,
    pending_digest_message,
    student_approved_message,
    student_declined_message,
    student_waiting_message,
)

EVIL_SCHOOL = "Evil U\r\nBcc: all@evil.example =?utf-8?q?X=0D=0AReply-To:_a@evil?="
EVIL_JOB = "job-1\nBcc: x@evil.example; rm -rf /"


def notice(**values: object) -> JobNotice:
    base: dict[str, object] = dict(
        event_id="e",
        event_type="import_job.held",
        job_id="sis-1",
        school_id="s-1",
        source_name="students.csv",
        held=True,
        completed=False,
        dry_run=False,
        total_rows=10,
        counts=JobCounts(),
        hold=JobHoldFigures(3, 1, 20, 10),
    )
    return JobNotice(**(base | values))  # type: ignore[arg-type]


def all_messages(school: str, name: str, job: JobNotice) -> list[tuple[str, str]]:
    return [
        student_waiting_message(school, name, "ann@gmail.example"),
        student_approved_message(school, name, "ann@gmail.example"),
        student_declined_message(school, name, "ann@gmail.example"),
        pending_digest_message(school, "s-1", 2, 5, timedelta(hours=26)),
        job_held_message(school, "s-1", job),
        job_failed_rows_message(school, "s-1", job),
    ]


def test_no_value_can_add_a_header_or_a_line() -> None:
    job = notice(job_id=EVIL_JOB, source_name="a\r\nb.csv")
    for subject, body in all_messages(EVIL_SCHOOL, "Ann\r\nBcc: x@evil.example", job):
        assert "\n" not in subject and "\r" not in subject and "=?" not in subject
        assert "\r" not in body
        assert not any(line.startswith("Bcc:") for line in body.splitlines())


def test_job_ids_are_quoted_for_the_shell() -> None:
    _, body = job_held_message("Uni", "s-1", notice(job_id="sis 2026; rm -rf /"))
    assert "rollcall import release 'sis 2026; rm -rf /' --wait" in body
    _, plain = job_held_message("Uni", "s-1", notice(job_id="sis-2026-12-01"))
    assert "rollcall import hold sis-2026-12-01 " in plain


def test_student_mails_name_the_school_and_say_what_happens_next() -> None:
    subject, body = student_waiting_message("Northfield", "Ann", "ann@gmail.example")
    assert subject == "Your request is waiting for Northfield"
    assert body.startswith("Hello Ann,\n") and "cannot sign in yet" in body and body.endswith("\n")
    subject, body = student_approved_message("Northfield", "", "ann@gmail.example")
    assert subject == "Northfield: your request was approved" and body.startswith("Hello,\n")
    assert "Sign in to the careers site with this address (ann@gmail.example)" in body
    subject, body = student_declined_message("Northfield", "Ann", "ann@gmail.example")
    assert subject == "Northfield: your request was declined" and "contact Northfield" in body


def test_staff_mails_carry_the_figures_and_what_to_run() -> None:
    _, body = job_held_message("Northfield", "s-1", notice())
    assert "20.0 % of the school's 20 students" in body and "threshold:         10 %" in body
    assert "rollcall school set s-1 --mute job_held" in body
    failed = notice(event_type="import_job.completed", held=False, completed=True, hold=None, dry_run=True)
    failed = JobNotice(**{**failed.__dict__, "counts": JobCounts(created=5, failed=1, archived=2)})
    subject, body = job_failed_rows_message("Northfield", "s-1", failed)
    assert subject == "Northfield: import job sis-1 finished with 1 failed row"
    assert "failed 1, archived 2" in body and "This was a dry run" in body
    subject, body = pending_digest_message("Northfield", "s-1", 1, 1, timedelta(minutes=5))
    assert subject == "Northfield: 1 new request waiting for approval"
    assert "1 request is waiting" in body and "5 minutes" in body


def test_a_long_school_name_is_cut_in_subjects_only() -> None:
    subject, body = student_approved_message("N" * 300, "Ann", "a@b.example")
    assert len(subject) < 120 and subject.startswith("N" * 77 + "...")
    assert "N" * 300 in body


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(seconds=20), "less than a minute"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(minutes=59), "59 minutes"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=2, minutes=1), "2 hours 1 minute"),
        (timedelta(days=1), "1 day"),
        (timedelta(days=3, hours=4, minutes=5), "3 days 4 hours"),
        (timedelta(seconds=-5), "less than a minute"),
    ],
)
def test_ages_read_as_people_say_them(age: timedelta, text: str) -> None:
    assert describe_age(age) == text


def test_muted_kinds_are_checked_once_each_in_order() -> None:
    found = Violations()
    kinds = [
        NotificationKind.STUDENT_DECIDED,
        NotificationKind.PENDING_DIGEST,
        NotificationKind.PENDING_DIGEST,
    ]
    assert muted_notifications(kinds, "muted", found) == (
        NotificationKind.PENDING_DIGEST,
        NotificationKind.STUDENT_DECIDED,
    )
    assert not found
    muted_notifications([None, NotificationKind.JOB_HELD], "muted", found)
    assert [v.field for v in found.violations] == ["muted[0]"]
    assert is_muted(("JOB_HELD",), NotificationKind.JOB_HELD)
    assert not is_muted(("JOB_HELD",), NotificationKind.JOB_FAILED_ROWS)


def test_which_event_is_which_kind() -> None:
    assert job_notification(notice()) is NotificationKind.JOB_HELD
    assert job_notification(notice(held=False)) is None  # no longer held when the event was written
    done = notice(event_type="import_job.completed", held=False, completed=True, hold=None)
    assert job_notification(done) is None  # no failed rows
    failed = JobNotice(**{**done.__dict__, "counts": JobCounts(failed=2)})
    assert job_notification(failed) is NotificationKind.JOB_FAILED_ROWS
    assert job_notification(JobNotice(**{**failed.__dict__, "event_type": "user.updated"})) is None
