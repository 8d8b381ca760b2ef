"""Import jobs and row outcomes: what a job is, how its rows are counted, when it is complete.

A job is one file: a school, a mode, the sensitive-fields setting, a dry-run flag and a source
name; its id belongs to that school for ever. It is complete when its end-of-file message has
arrived and as many rows have a recorded outcome as the end message announced: ``total_rows`` is the
number of DISTINCT row numbers the job has (a row sent twice counts once; row numbers come from the
file, so gaps are allowed). A second end with another total, an end below the rows the job already
has, and a new row past the total are JOB_MISMATCH (``end_mismatch``, ``split_at_total``). The
PostgreSQL adapter evaluates the same rules inside its statements (``is_complete`` is the reference).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from import_service.domain.rows import FileRow


class ImportMode(StrEnum):
    """How a file reaches rollcall (proto ``IMPORT_MODE_*``)."""

    ONGOING_SYNC = "ONGOING_SYNC"
    MANUAL_FILE = "MANUAL_FILE"


class Outcome(StrEnum):
    """What happened to one row (proto ``ROW_OUTCOME_*``)."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    ARCHIVED = "ARCHIVED"  # an explicit status=archived row archived the student (issue 9)
    DELETED = "DELETED"  # an undo deleted a student the undone job created


class JobState(StrEnum):
    """Where a job stands as clients see it (proto ``IMPORT_JOB_STATE_*``)."""

    RECEIVING = "RECEIVING"
    COMPLETED = "COMPLETED"
    HELD = "HELD"
    DISCARDED = "DISCARDED"


class Phase(StrEnum):
    """Where a job is in its life (stored in ``jobs.phase``). Rows are received (for a guarded job as
    a dry-run preview); then, by ``phase_after_rows``: an ordinary job is COMPLETED at once, a guarded
    one is DECIDING (the job runner measures its preview against the school's threshold → HELD, or
    APPLYING), a full roster SWEEPING after its rows are applied; an undo job is UNDOING from its
    creation. The runner drives DECIDING, APPLYING, SWEEPING and UNDOING (``RUNNER_PHASES``)."""

    RECEIVING = "RECEIVING"
    DECIDING = "DECIDING"
    HELD = "HELD"
    APPLYING = "APPLYING"
    SWEEPING = "SWEEPING"
    UNDOING = "UNDOING"
    COMPLETED = "COMPLETED"
    DISCARDED = "DISCARDED"

    @property
    def state(self) -> JobState:
        if self is Phase.HELD:
            return JobState.HELD
        if self is Phase.COMPLETED:
            return JobState.COMPLETED
        if self is Phase.DISCARDED:
            return JobState.DISCARDED
        return JobState.RECEIVING


RUNNER_PHASES = (Phase.DECIDING, Phase.APPLYING, Phase.SWEEPING, Phase.UNDOING)
"""The phases the job runner moves on (mirrored by the partial index ``jobs_to_run``)."""

SENSITIVE_FIELDS = frozenset({"username", "email_address", "auth_identifier"})
"""product.md "Sensitive fields", named as ``FieldChange`` names them. The guard counts a student whose
value of one of them a row changes (filling a blank one changes nobody's identity)."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job is. Every message of a job must carry the same school, mode and flags."""

    job_id: str
    school_id: str
    mode: ImportMode
    sensitive_fields_update: bool = False
    dry_run: bool = False
    source_name: str = ""
    parent_job_id: str = ""
    full_roster: bool = False
    undo_of_job_id: str = ""

    @property
    def guardable(self) -> bool:
        """A job the change threshold guards (product.md "Guarded jobs"): it may change sensitive
        fields or archive students, and it is neither a dry run nor an undo. Whether it IS guarded
        also depends on the school's threshold when the job is created (0: the guard is off)."""
        may_harm = self.sensitive_fields_update or self.full_roster
        return may_harm and not self.dry_run and not self.undo_of_job_id

    def mismatch(self, other: JobSpec) -> str | None:
        """The first field on which ``other`` (a message of the same job id) disagrees, if any."""
        for name in ("school_id", "mode", "sensitive_fields_update", "dry_run", "full_roster"):
            if getattr(self, name) != getattr(other, name):
                return name
        return None


class FieldChange(NamedTuple):
    """One field a row changed (or in a dry run would change), as identity reported it: ``field`` is a
    StudentRow field name or ``status``."""

    field: str
    old_value: str
    new_value: str


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one row as identity reported it, with the fields it changed."""

    row_number: int
    outcome: Outcome
    approved: bool = False
    user_id: str = ""
    reason: str = ""
    message: str = ""
    changes: tuple[FieldChange, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordedRow:
    """A stored outcome together with the row as it was received."""

    result: RowResult
    row: FileRow


@dataclass(frozen=True, slots=True)
class Counts:
    """Rows by outcome; ``field_changes`` counts, per field name, the rows that changed it."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    approved: int = 0
    field_changes: Mapping[str, int] = field(default_factory=dict)
    archived: int = 0
    deleted: int = 0


def count_field_changes(counted: Mapping[str, int], results: Iterable[RowResult]) -> dict[str, int]:
    """``counted`` plus, for each field, the rows of ``results`` that changed it (the PostgreSQL
    adapter computes the same inside its recording statement)."""
    total = dict(counted)
    for result in results:
        for change in result.changes:
            total[change.field] = total.get(change.field, 0) + 1
    return total


def phase_after_rows(spec: JobSpec, guarded: bool) -> Phase:
    """What a job becomes once every row has an outcome (stored with the job as ``after_rows``, read
    by the recording statements): a guarded job is decided, a full roster swept, others complete."""
    if guarded:
        return Phase.DECIDING
    if spec.full_roster:
        return Phase.SWEEPING
    return Phase.COMPLETED


@dataclass(frozen=True, slots=True)
class Hold:
    """A guarded job's figures (proto ``JobHold``): the students its preview would change in a
    sensitive field, the students it would archive, the school's students and threshold."""

    sensitive_changes: int
    archives: int
    school_students: int
    threshold_percent: int

    @property
    def exceeded(self) -> bool:
        """The preview changes more than ``threshold_percent`` of the school's students (0: never)."""
        if self.threshold_percent <= 0:
            return False
        return (self.sensitive_changes + self.archives) * 100 > self.threshold_percent * self.school_students


@dataclass(frozen=True, slots=True)
class Archive:
    """A student a full-roster job archived (``archive_time`` None: would archive, while HELD)."""

    user_id: str
    username: str
    email_address: str
    archive_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A job and its progress. ``total_rows`` is None until the end-of-file message arrived."""

    spec: JobSpec
    create_time: datetime
    total_rows: int | None = None
    end_seen: bool = False
    rows_recorded: int = 0
    counts: Counts = field(default_factory=Counts)
    dead_lettered: int = 0
    complete_time: datetime | None = None
    phase: Phase = Phase.RECEIVING
    guarded: bool = False
    hold: Hold | None = None

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def state(self) -> JobState:
        return self.phase.state

    @property
    def preview(self) -> bool:
        """Rows of this job are sent to identity as a dry run: it is one, or a guarded job's preview."""
        return self.spec.dry_run or self.guarded


def is_complete(end_seen: bool, total_rows: int | None, rows_recorded: int) -> bool:
    """The completion rule (mirrored in SQL by the recording statements)."""
    return end_seen and total_rows is not None and rows_recorded >= total_rows


IDENTITY_REFUSED = "IDENTITY_REFUSED"
"""Row reason: identity refused this row alone (after the batch was split down to it)."""


@dataclass(frozen=True, slots=True)
class EndRecorded:
    """What recording an end message did: ``mismatch`` says why it contradicts the job (then nothing
    was recorded); ``completed`` is True when this end brought the job's last row (the job then
    moved on to ``phase``: COMPLETED, or a phase of the job runner)."""

    completed: bool = False
    mismatch: str | None = None
    phase: Phase | None = None
    """Where the job stands after the end (when recorded)."""


def end_mismatch(end_seen: bool, total_rows: int | None, rows_recorded: int, new_total: int) -> str | None:
    """Why an end with ``new_total`` contradicts the job (None: record it; the same total again is a
    harmless duplicate)."""
    if end_seen and total_rows is not None and total_rows != new_total:
        return f"the job's end already said total_rows {total_rows}; this one says {new_total}"
    if rows_recorded > new_total:
        return f"the job already has {rows_recorded} distinct rows, more than total_rows {new_total}"
    return None


def split_at_total(
    rows: Sequence[FileRow], total_rows: int | None, rows_recorded: int
) -> tuple[list[FileRow], list[FileRow]]:
    """``rows`` (none of them recorded yet) → (those that fit under the job's total, those past it).

    Only known once the end arrived; the lowest row numbers fit first."""
    if total_rows is None:
        return list(rows), []
    room = max(0, total_rows - rows_recorded)
    ordered = sorted(rows, key=lambda row: row.row_number)
    return ordered[:room], ordered[room:]


def refused_row(row: FileRow, code: str, reason: str = "") -> RowResult:
    """A row identity refused on its own: FAILED with the status (and ErrorInfo reason), no other text."""
    said = code if not reason or reason == code else f"{code}, {reason}"
    return RowResult(
        row.row_number, Outcome.FAILED, reason=IDENTITY_REFUSED, message=f"identity refused this row ({said})"
    )


def failed_results(rows: Iterable[FileRow], reason: str, message: str) -> list[RowResult]:
    """Every row FAILED with one reason: identity refused the batch as a whole."""
    return [RowResult(row.row_number, Outcome.FAILED, reason=reason, message=message) for row in rows]


def check_results(rows: Sequence[FileRow], results: Sequence[RowResult]) -> None:
    """Identity answers one result per row, in order; anything else is a broken answer."""
    if len(rows) != len(results):
        raise ValueError(f"identity answered {len(results)} results for {len(rows)} rows")
    for row, result in zip(rows, results, strict=True):
        if row.row_number != result.row_number:
            raise ValueError(f"identity answered row {result.row_number} where {row.row_number} was sent")
