"""What the service layer needs from the outside world (implemented in ``adapters/`` and, for what a
connector shares, ``shared/amqp`` and ``shared/files``; wired in ``bootstrap.py``; faked in memory by
``tests/unit/importer/fakes.py``)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol

from import_service.domain.jobs import (
    Archive,
    EndRecorded,
    Hold,
    Job,
    JobSpec,
    Outcome,
    Phase,
    RecordedRow,
    RowResult,
)
from import_service.domain.messages import ImportMessage
from import_service.domain.rows import FileFormat, FileRow


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused message as recorded: ``dedupe_key`` is its message id, else a digest of it."""

    dedupe_key: str
    job_id: str | None
    reason: str
    detail: str
    routing_key: str
    content_type: str
    message_id: str
    body: bytes
    school_id: str | None = None
    """The school the letter may be counted for: the routing key's, once its connector was allowed
    for it; None for CONNECTOR_NOT_ALLOWED (counted on no job). A job counts only its school's."""


@dataclass(frozen=True, slots=True)
class RetryRequest:
    request_id: str
    parent_job_id: str
    sensitive_fields_update: bool
    job_id: str


class IdentityUnavailable(Exception):
    """Identity could not be reached or did not answer in time: wait and try the same batch again."""


class BatchRefused(Exception):
    """Identity answered, refusing the batch. ``whole_batch`` (e.g. SCHOOL_NOT_FOUND): every row fails
    with ``reason``; otherwise the refusal may be caused by some rows only, and the batch is split
    until they are alone. ``code`` is the gRPC status name."""

    def __init__(self, reason: str, message: str, *, code: str = "", whole_batch: bool = True) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.code = code or reason
        self.whole_batch = whole_batch


class JobsRepo(Protocol):
    async def ensure(self, spec: JobSpec, *, guarded: bool = False) -> Job: ...
    async def get(self, job_id: str) -> Job | None: ...
    async def record_end(self, job_id: str, total_rows: int) -> EndRecorded: ...
    async def progress(self, job_id: str) -> tuple[int | None, int]: ...
    async def list_newest(
        self, school_id: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Job]: ...


class ResultsRepo(Protocol):
    async def recorded_among(self, job_id: str, row_numbers: Sequence[int]) -> set[int]: ...
    async def record(
        self, job_id: str, outcomes: Sequence[tuple[FileRow, RowResult]], *, applied: bool = True
    ) -> tuple[int, bool]: ...
    async def page(
        self, job_id: str, outcomes: Collection[Outcome], after_row: int, limit: int
    ) -> list[RecordedRow]: ...
    async def failed_extra_columns(self, job_id: str) -> list[str]: ...


class JobRunsRepo(Protocol):
    """The job runner's and staff decisions' side of a job (``adapters/postgres/job_runs_repo``)."""

    async def claim(self, owner: str, lease_seconds: float, busy: Sequence[str]) -> str | None: ...
    async def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool: ...
    async def let_go(self, job_id: str, owner: str) -> None: ...
    async def preview_figures(self, job_id: str) -> tuple[int, int]: ...
    async def decide(self, job_id: str, hold: Hold, would_archive: Sequence[Archive]) -> bool: ...
    async def release(self, job_id: str, actor: str) -> bool: ...
    async def discard(self, job_id: str, actor: str) -> bool: ...
    async def unapplied(self, job_id: str, limit: int, after_row: int = 0) -> list[RecordedRow]: ...
    async def apply_results(self, job_id: str, results: Sequence[RowResult]) -> None: ...
    async def finish_applying(self, job_id: str) -> Phase | None: ...
    async def finish_sweep(self, job_id: str, archives: Sequence[Archive]) -> bool: ...
    async def finish_undo(self, job_id: str, total_rows: int) -> bool: ...
    async def archives_page(self, job_id: str, after_user: str, limit: int) -> list[Archive]: ...
    async def start_undo(self, spec: JobSpec) -> bool: ...
    async def undo_of(self, job_id: str) -> Job | None: ...
    async def decision(self, request_id: str) -> tuple[str, str, str] | None: ...
    async def add_decision(self, request_id: str, action: str, job_id: str, result_job: str) -> bool: ...


class DeadLettersRepo(Protocol):
    async def add(self, letter: DeadLetter) -> bool: ...


class RetryRequestsRepo(Protocol):
    async def get(self, request_id: str) -> RetryRequest | None: ...
    async def add(self, request: RetryRequest) -> bool: ...


class UnitOfWork(Protocol):
    """One transaction; rolled back on leaving unless ``commit`` was called."""

    @property
    def jobs(self) -> JobsRepo: ...
    @property
    def results(self) -> ResultsRepo: ...
    @property
    def runs(self) -> JobRunsRepo: ...
    @property
    def retries(self) -> RetryRequestsRepo: ...

    async def commit(self) -> None: ...
    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Store(Protocol):
    """Single statements go straight to the repositories; several at once through a unit of work."""

    @property
    def jobs(self) -> JobsRepo: ...
    @property
    def results(self) -> ResultsRepo: ...
    @property
    def runs(self) -> JobRunsRepo: ...
    @property
    def dead_letters(self) -> DeadLettersRepo: ...
    @property
    def retries(self) -> RetryRequestsRepo: ...

    def unit_of_work(self) -> UnitOfWork: ...


class RowsApplier(Protocol):
    """Identity's ApplyStudentRows: raises IdentityUnavailable or BatchRefused. ``dry_run``: compute
    only (a dry-run job, or a guarded job's preview)."""

    async def apply_rows(self, job: Job, rows: Sequence[FileRow], *, dry_run: bool) -> list[RowResult]: ...


class JobsIdentity(RowsApplier, Protocol):
    """What the job runner asks identity besides rows; each raises IdentityUnavailable or
    BatchRefused like ``apply_rows``."""

    async def import_guard(self, school_id: str) -> tuple[int, int]:
        """(the school's change_threshold_percent, its students of any status)."""
        ...

    async def sweep(self, job: Job, *, dry_run: bool) -> tuple[list[Archive], int]:
        """ArchiveStudentsNotInJob: (the students archived, or in a dry run would be; school students)."""
        ...

    async def undo_rows(self, undo: Job) -> list[RowResult]:
        """UndoStudentRows for the undo job ``undo`` (of ``undo.spec.undo_of_job_id``)."""
        ...


class StaffDirectory(Protocol):
    async def active_staff_school(self, actor_id: str) -> str | None:
        """The school of which ``actor_id`` is ACTIVE STAFF, or None."""
        ...


class RowsPublisher(Protocol):
    """Publishes a job's messages to the import exchange, confirmed by the broker."""

    async def publish_rows(self, spec: JobSpec, rows: Sequence[FileRow]) -> None: ...
    async def publish_end(self, spec: JobSpec, total_rows: int) -> None: ...


class Delivery(Protocol):
    """A message as the queue delivered it (the consumer's translation of its transport), settled
    exactly once by the service: acknowledged, or returned to the queue. ``school_id`` is the school
    of the routing key ``rows.<school_id>`` ("" when the key is not of that form)."""

    body: bytes
    content_type: str
    routing_key: str
    school_id: str
    message_id: str
    user_id: str | None

    async def ack(self) -> None: ...
    async def requeue(self) -> None: ...


class MessageDecoder(Protocol):
    """A delivery's body → the message it carries; raises ``ContractViolation`` when off-contract."""

    def __call__(self, body: bytes, content_type: str, routing_key: str, /) -> ImportMessage: ...


class DeadLetterQueue(Protocol):
    """Where refused messages go: a copy of ``delivery`` with ``reason`` and ``detail`` (and who
    published it), confirmed by the broker before this returns; raises when it could not be sent."""

    async def send(self, delivery: Delivery, reason: str, detail: str) -> None: ...


class RowReader(Protocol):
    """An upload's reader: fed the file's bytes chunk by chunk, then finished; each call returns the
    rows completed so far. A problem with the file as a whole raises ``FileFormatError``."""

    @property
    def extra_columns(self) -> tuple[str, ...]: ...

    def feed(self, chunk: bytes) -> list[FileRow]: ...

    def finish(self) -> list[FileRow]: ...


class RowReaders(Protocol):
    """A fresh ``RowReader`` for a file of ``file_format``."""

    def __call__(self, file_format: FileFormat) -> RowReader: ...


class FailedRowsFile(Protocol):
    """The failed-rows export: a file in the upload format that re-uploads unchanged."""

    def exportable(self, extra_columns: Sequence[str]) -> list[str]:
        """The extra columns that can be written (no clash with the upload columns or each other)."""
        ...

    def chunks(self, rows: Iterable[FileRow], extra_columns: Sequence[str]) -> Iterator[bytes]:
        """The file's bytes for ``rows``, header first, in chunks."""
        ...
