"""The queue contract (api.md, "Queue contract"): what a connector's message may carry.

A message is either some rows of a job or its end. Anything off-contract is refused with a
``ContractViolation`` whose ``reason`` becomes the ``x-rollcall-dead-reason`` of the copy sent to
the dead-letter queue. Transport checks (content type, body size, decoding) live in the AMQP
adapter, which hands the decoded values to ``job_spec``, ``rows_message`` and ``end_message``: the
rules about the message's content live here, and each is checked once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from import_service.domain.connectors import is_canonical_school_id
from import_service.domain.jobs import ImportMode, JobSpec
from import_service.domain.rows import MAX_ROWS_PER_MESSAGE, FileRow

MAX_JOB_ID_CHARS = 128
MAX_SCHOOL_ID_CHARS = 128
MAX_SOURCE_NAME_CHARS = 512
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest message body accepted (1000 rows of generous size fit well under it)."""


class DeadReason(StrEnum):
    """Why a message went to the dead-letter queue (header ``x-rollcall-dead-reason``)."""

    UNKNOWN_CONTENT_TYPE = "UNKNOWN_CONTENT_TYPE"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    UNDECODABLE = "UNDECODABLE"
    INVALID_JOB_ID = "INVALID_JOB_ID"
    INVALID_SCHOOL_ID = "INVALID_SCHOOL_ID"
    SCHOOL_MISMATCH = "SCHOOL_MISMATCH"
    MODE_MISSING = "MODE_MISSING"
    NO_BODY = "NO_BODY"
    NO_ROWS = "NO_ROWS"
    TOO_MANY_ROWS = "TOO_MANY_ROWS"
    INVALID_ROW_NUMBER = "INVALID_ROW_NUMBER"
    DUPLICATE_ROW_NUMBER = "DUPLICATE_ROW_NUMBER"
    INVALID_TOTAL_ROWS = "INVALID_TOTAL_ROWS"
    JOB_MISMATCH = "JOB_MISMATCH"
    CONNECTOR_NOT_ALLOWED = "CONNECTOR_NOT_ALLOWED"
    INVALID_TEXT = "INVALID_TEXT"
    PROCESSING_FAILED = "PROCESSING_FAILED"


class ContractViolation(Exception):
    """A message the service will not process. ``job_id`` is set when it could be read."""

    def __init__(self, reason: DeadReason, detail: str, job_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class RowsMessage:
    """Some rows of a job."""

    spec: JobSpec
    rows: tuple[FileRow, ...]


@dataclass(frozen=True, slots=True)
class EndMessage:
    """The end of a job's file: ``total_rows`` rows were published for it."""

    spec: JobSpec
    total_rows: int


ImportMessage = RowsMessage | EndMessage


def job_spec(
    *,
    job_id: str,
    school_id: str,
    routing_school: str,
    mode: ImportMode | None,
    sensitive_fields_update: bool,
    dry_run: bool,
    source_name: str,
    parent_job_id: str,
    full_roster: bool = False,
) -> JobSpec:
    """The job a message names, once its header fields are on-contract (``routing_school`` is the
    routing key's suffix); raises ContractViolation."""
    check_header(job_id, school_id, routing_school, mode is not None)
    assert mode is not None
    check_text(job_id, "source_name", source_name)
    check_text(job_id, "parent_job_id", parent_job_id)
    return JobSpec(
        job_id=job_id,
        school_id=school_id,
        mode=mode,
        sensitive_fields_update=sensitive_fields_update,
        full_roster=full_roster,
        dry_run=dry_run,
        source_name=source_name[:MAX_SOURCE_NAME_CHARS],
        parent_job_id=parent_job_id[:MAX_JOB_ID_CHARS],
    )


def rows_message(spec: JobSpec, row_numbers: Sequence[int], rows: Iterable[FileRow]) -> RowsMessage:
    """Some rows of ``spec``'s job: ``row_numbers`` are checked (``check_row_numbers``) before
    ``rows`` (the same rows, decoded lazily) is read. A row's own text (NUL included) is identity's
    to judge: FAILED INVALID_ROW for that row alone (decision table row 1)."""
    check_row_numbers(spec.job_id, row_numbers)
    return RowsMessage(spec, tuple(rows))


def end_message(spec: JobSpec, total_rows: int) -> EndMessage:
    check_total_rows(spec.job_id, total_rows)
    return EndMessage(spec, total_rows)


def check_header(job_id: str, school_id: str, routing_school: str, mode_set: bool) -> None:
    """The fields every message carries; ``routing_school`` is the routing key's suffix."""
    if not 1 <= len(job_id) <= MAX_JOB_ID_CHARS or not job_id.isprintable():
        raise ContractViolation(DeadReason.INVALID_JOB_ID, f"job_id must be 1..{MAX_JOB_ID_CHARS} characters")
    if not 1 <= len(school_id) <= MAX_SCHOOL_ID_CHARS or not school_id.isprintable():
        raise ContractViolation(DeadReason.INVALID_SCHOOL_ID, "school_id must be set", job_id)
    if not is_canonical_school_id(school_id) and _looks_like_a_uuid(school_id):
        raise ContractViolation(
            DeadReason.INVALID_SCHOOL_ID,
            "school_id must be written as a lower-case UUID (and so must the routing key)",
            job_id,
        )
    if school_id != routing_school:
        raise ContractViolation(
            DeadReason.SCHOOL_MISMATCH, "school_id does not match the routing key rows.<school_id>", job_id
        )
    if not mode_set:
        raise ContractViolation(DeadReason.MODE_MISSING, "mode must be set", job_id)


def check_row_numbers(job_id: str, row_numbers: Sequence[int]) -> None:
    """1..1000 rows, each numbered from 1, no number twice in one message."""
    if not row_numbers:
        raise ContractViolation(DeadReason.NO_ROWS, "a rows message carries 1..1000 rows", job_id)
    if len(row_numbers) > MAX_ROWS_PER_MESSAGE:
        raise ContractViolation(
            DeadReason.TOO_MANY_ROWS, f"{len(row_numbers)} rows; at most {MAX_ROWS_PER_MESSAGE}", job_id
        )
    if min(row_numbers) < 1:
        raise ContractViolation(DeadReason.INVALID_ROW_NUMBER, "row_number starts at 1", job_id)
    if len(set(row_numbers)) != len(row_numbers):
        raise ContractViolation(DeadReason.DUPLICATE_ROW_NUMBER, "a row_number appears twice", job_id)


def check_total_rows(job_id: str, total_rows: int) -> None:
    if total_rows < 0:
        raise ContractViolation(DeadReason.INVALID_TOTAL_ROWS, "total_rows must be >= 0", job_id)


def _looks_like_a_uuid(value: str) -> bool:
    """Any spelling of a UUID (upper case, no hyphens, braces, ``urn:uuid:``), or any upper case at
    all: a school id the school's staff would not find their jobs under."""
    if value != value.lower():
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def storable_text_problem(value: str) -> str | None:
    """Why PostgreSQL would refuse ``value`` as text (None when it would store it)."""
    if "\x00" in value:
        return "contains NUL (U+0000), which cannot be stored"
    return None


def check_text(job_id: str, field: str, value: str) -> None:
    problem = storable_text_problem(value)
    if problem is not None:
        raise ContractViolation(DeadReason.INVALID_TEXT, f"{field} {problem}", job_id)
