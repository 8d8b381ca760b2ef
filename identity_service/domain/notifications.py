"""Notifications by mail (product.md "What others are told"): the kinds, which a school can switch
off, what each kind says, and which import-job event is which kind. Pure: no I/O.

Five kinds, each a plain-text template (a builder returning ``(subject, body)``, like ``domain.mail``):

- to a student who signed up: ``STUDENT_WAITING`` — the request is waiting for the school;
- to a student: ``STUDENT_DECIDED`` — approved (by staff, or by a student file naming them) or
  declined by staff;
- to the school's ``notify_emails``: ``PENDING_DIGEST`` — new pending requests (count, how many wait
  in all, the oldest request's age), at most hourly and only when there are new ones; ``JOB_HELD`` —
  an import job was held (its figures, the source, what to run); ``JOB_FAILED_ROWS`` — a job
  completed with failed rows (its counts, how to export and re-drive them).

Every text of a mail that comes from data (school and person names, addresses, job ids, source
names) goes through ``mail.one_line``, and subjects through ``mail.header_text``, so nothing in a
value can add a header or a line. Command lines quote job ids for a shell (``shlex.quote``).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from identity_service.domain.fields import Violations
from identity_service.domain.mail import header_text, one_line, short_school

SOURCE_NAME_MAX = 200
JOB_ID_MAX = 200


class NotificationKind(StrEnum):
    """A kind of notification a school can switch off (proto ``NotificationKind``, without its prefix;
    stored in ``schools.muted_notifications``)."""

    PENDING_DIGEST = "PENDING_DIGEST"
    JOB_HELD = "JOB_HELD"
    JOB_FAILED_ROWS = "JOB_FAILED_ROWS"
    STUDENT_WAITING = "STUDENT_WAITING"
    STUDENT_DECIDED = "STUDENT_DECIDED"


def muted_notifications(
    raw: Sequence[NotificationKind | None], field: str, found: Violations
) -> tuple[NotificationKind, ...]:
    """The kinds to switch off, once each, in NotificationKind order; ``None`` (UNSPECIFIED, or a
    number this build does not know) is a violation naming ``field[i]``."""
    for index, kind in enumerate(raw):
        if kind is None:
            found.add(f"{field}[{index}]", "is not a notification kind")
    return tuple(kind for kind in NotificationKind if kind in raw)


def is_muted(muted: Sequence[str], kind: NotificationKind) -> bool:
    return kind.value in muted


# --- import-job events -------------------------------------------------------------------------


class JobEventType(StrEnum):
    """The events of the events exchange a notification is made from (their routing keys)."""

    HELD = "import_job.held"
    COMPLETED = "import_job.completed"


@dataclass(frozen=True)
class JobHoldFigures:
    """Why a guarded job is held (proto ``JobHold``)."""

    sensitive_changes: int
    archives: int
    school_students: int
    threshold_percent: int

    @property
    def percent(self) -> float:
        if self.school_students <= 0:
            return 100.0 if self.sensitive_changes + self.archives else 0.0
        return (self.sensitive_changes + self.archives) * 100.0 / self.school_students


@dataclass(frozen=True)
class JobCounts:
    """Rows of a job by outcome (proto ``ImportCounts``)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    approved: int = 0
    archived: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class JobNotice:
    """What an ``import_job.*`` event says about its job (``Event.job.job``), as plain values."""

    event_id: str
    event_type: str
    job_id: str
    school_id: str
    source_name: str
    held: bool  # the job's state is HELD
    completed: bool  # the job's state is COMPLETED
    dry_run: bool
    total_rows: int
    counts: JobCounts
    hold: JobHoldFigures | None = None
    parent_job_id: str = ""
    undo_of_job_id: str = ""


def job_notification(notice: JobNotice) -> NotificationKind | None:
    """Which kind of mail an event is: a held job, a completed job with failed rows, or none."""
    if notice.event_type == JobEventType.HELD and notice.held:
        return NotificationKind.JOB_HELD
    if notice.event_type == JobEventType.COMPLETED and notice.completed and notice.counts.failed > 0:
        return NotificationKind.JOB_FAILED_ROWS
    return None


# --- templates -----------------------------------------------------------------------------------


def student_waiting_message(school_name: str, first_name: str, email: str) -> tuple[str, str]:
    """To a student who just signed up: the request is waiting for the school's staff."""
    school = _school(school_name)
    subject = header_text(f"Your request is waiting for {short_school(school)}")
    body = _lines(
        _greeting(first_name),
        "",
        f"Thank you for signing up for the careers site of {school} with this address:",
        f"{one_line(email)}",
        "",
        f"Your request is waiting for {school}. Its career services office checks every new",
        "request before the account can be used, so you cannot sign in yet. We will write to you at",
        "this address as soon as they have decided.",
        "",
        "There is nothing more to do for now. If you did not sign up, you can ignore this message,",
        f"or tell {school}'s career services office.",
        "",
        f"{school} career services",
    )
    return subject, body


def student_approved_message(school_name: str, first_name: str, email: str) -> tuple[str, str]:
    """To a student whose request was approved (by staff, or by a student file naming them)."""
    school = _school(school_name)
    subject = header_text(f"{short_school(school)}: your request was approved")
    body = _lines(
        _greeting(first_name),
        "",
        f"Good news: {school} approved your request. Your careers account is ready.",
        "",
        f"Sign in to the careers site with this address ({one_line(email)}) and the password",
        "you chose when you signed up.",
        "",
        f"If you did not ask for an account, contact {school}'s career services office.",
        "",
        f"{school} career services",
    )
    return subject, body


def student_declined_message(school_name: str, first_name: str, email: str) -> tuple[str, str]:
    """To a student whose request staff declined. Staff's reason is an internal note (the audit
    trail's) and is not sent."""
    school = _school(school_name)
    subject = header_text(f"{short_school(school)}: your request was declined")
    body = _lines(
        _greeting(first_name),
        "",
        f"{school}'s career services office could not approve your request for a careers",
        f"account made with this address ({one_line(email)}). You cannot sign in with it.",
        "",
        f"If you think this is a mistake - for example, you study or studied at {school} -",
        f"contact {school}'s career services office. They may ask you to sign up again with your",
        "school email address.",
        "",
        f"{school} career services",
    )
    return subject, body


def pending_digest_message(
    school_name: str, school_id: str, new_requests: int, waiting: int, oldest_age: timedelta
) -> tuple[str, str]:
    """To notify_emails: ``new_requests`` new pending requests since the last digest, ``waiting`` in
    all, the oldest waiting for ``oldest_age``."""
    school = _school(school_name)
    noun = "request" if new_requests == 1 else "requests"
    subject = header_text(f"{short_school(school)}: {new_requests:,} new {noun} waiting for approval")
    waits = "1 request is" if waiting == 1 else f"{waiting:,} requests are"
    body = _lines(
        "Hello,",
        "",
        f"{new_requests:,} new {noun} to join {school}'s careers site arrived since the last digest.",
        f"{waits} waiting for a decision; the oldest has waited {describe_age(oldest_age)}.",
        "",
        "Open the pending queue of the careers site to approve or decline them (look for",
        "duplicates first: a student may already have an account under another address).",
        "",
        "This digest comes at most once an hour, and only when there are new requests.",
        _mute_hint(school_id, NotificationKind.PENDING_DIGEST),
        "",
        "rollcall",
    )
    return subject, body


def job_held_message(school_name: str, school_id: str, notice: JobNotice) -> tuple[str, str]:
    """To notify_emails: a guarded job was held; its figures, its source, and what to run."""
    school = _school(school_name)
    job = _job(notice.job_id)
    hold = notice.hold or JobHoldFigures(0, 0, 0, 0)
    subject = header_text(f"{short_school(school)}: import job {job} is held for review")
    quoted = shlex.quote(job)
    body = _lines(
        "Hello,",
        "",
        f"The student file {_source(notice.source_name)} (import job {job}) was held before",
        f"anything of it was applied: it would change or archive more of {school}'s students than",
        "the school's change threshold allows.",
        "",
        f"  sensitive changes: {hold.sensitive_changes:,} students (a username, email or auth identifier)",
        f"  archives:          {hold.archives:,} students",
        f"  together:          {hold.percent:.1f} % of the school's {hold.school_students:,} students",
        f"  threshold:         {hold.threshold_percent} %",
        "",
        "Nothing has changed yet. Look at what the job would do, then release or discard it:",
        "",
        f"    rollcall import hold {quoted}             # why: every change, who would be archived",
        f"    rollcall import release {quoted} --wait   # apply it (every row decided afresh)",
        f"    rollcall import discard {quoted}          # end it, nothing applied",
        "",
        "(As staff, add --actor <your user id> before import.)",
        _mute_hint(school_id, NotificationKind.JOB_HELD),
        "",
        "rollcall",
    )
    return subject, body


def job_failed_rows_message(school_name: str, school_id: str, notice: JobNotice) -> tuple[str, str]:
    """To notify_emails: a completed job had failed rows; its counts, how to export and re-drive."""
    school = _school(school_name)
    job = _job(notice.job_id)
    counts = notice.counts
    failed_noun = "row" if counts.failed == 1 else "rows"
    subject = header_text(
        f"{short_school(school)}: import job {job} finished with {counts.failed:,} failed {failed_noun}"
    )
    quoted = shlex.quote(job)
    body = _lines(
        "Hello,",
        "",
        f"The student file {_source(notice.source_name)} (import job {job}) of {school} is complete:",
        f"{notice.total_rows:,} rows, {counts.failed:,} of them failed and changed nothing.",
        *(
            ["This was a dry run: nothing was changed, the outcomes are what the file would do."]
            if notice.dry_run
            else []
        ),
        "",
        f"  {_count_line(counts)}",
        "",
        "See why each row failed, and export the failed rows in the upload format:",
        "",
        f"    rollcall import failed {quoted}                    # each failed row and its reason",
        f"    rollcall import failed {quoted} --csv failed.csv   # the rows, to correct and upload again",
        "",
        "or re-drive them as they are (a new job, linked to this one):",
        "",
        f"    rollcall import retry {quoted} --wait              # add --sensitive when the rows need it",
        "",
        "(As staff, add --actor <your user id> before import.)",
        _mute_hint(school_id, NotificationKind.JOB_FAILED_ROWS),
        "",
        "rollcall",
    )
    return subject, body


def describe_age(age: timedelta) -> str:
    """``2 days 3 hours``, ``5 hours 10 minutes``, ``1 minute``, ``less than a minute``."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return _join(_unit(days, "day"), _unit(hours, "hour"))
    if hours:
        return _join(_unit(hours, "hour"), _unit(minutes, "minute"))
    return _unit(minutes, "minute") if minutes else "less than a minute"


def _count_line(counts: JobCounts) -> str:
    parts = [
        f"created {counts.created:,}",
        f"updated {counts.updated:,}",
        f"unchanged {counts.unchanged:,}",
        f"skipped {counts.skipped:,}",
        f"failed {counts.failed:,}",
    ]
    parts += [f"{name} {value:,}" for name, value in _extra_counts(counts) if value]
    return ", ".join(parts)


def _extra_counts(counts: JobCounts) -> list[tuple[str, int]]:
    return [("approved", counts.approved), ("archived", counts.archived), ("deleted", counts.deleted)]


def _mute_hint(school_id: str, kind: NotificationKind) -> str:
    school = shlex.quote(one_line(school_id))
    return (
        "Staff of the school can switch this mail off (the kinds given replace those already off):\n"
        f"    rollcall school set {school} --mute {kind.value.lower()}"
    )


def _unit(value: int, name: str) -> str:
    return f"{value} {name}" if value == 1 else f"{value} {name}s"


def _join(first: str, second: str) -> str:
    return first if second.startswith("0 ") else f"{first} {second}"


def _school(name: str) -> str:
    return one_line(name) or "your school"


def _greeting(first_name: str) -> str:
    name = one_line(first_name)
    return f"Hello {name}," if name else "Hello,"


def _job(job_id: str) -> str:
    return _cut(one_line(job_id), JOB_ID_MAX)


def _source(source_name: str) -> str:
    name = _cut(one_line(source_name), SOURCE_NAME_MAX)
    return f'"{name}"' if name else "(no source name)"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _lines(*lines: str) -> str:
    return "\n".join([*lines, ""])
