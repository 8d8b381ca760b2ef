"""SubmitFile: a staff upload read as it streams in and published to the queue like a connector's.

The file is parsed incrementally; rows are published in chunks of ``PUBLISH_CHUNK_ROWS`` and then
the end message. The job row is created just before the first publish, so a header problem
publishes nothing and leaves no job. A problem further down the file (e.g. an unterminated
record) stops the upload: if rows were already published, every row read before the problem is
published and ended as a job of its own (so it completes instead of waiting forever) and the call
fails naming the problem and that job; if nothing was published yet, nothing is, and no job exists.
A ``full_roster`` upload (or a sensitive one) is guarded (``job_guard``): a file cut short is
previewed and, archiving too many students, HELD like any other.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from import_service.domain.jobs import ImportMode, Job, JobSpec
from import_service.domain.messages import (
    MAX_SOURCE_NAME_CHARS,
    ContractViolation,
    storable_text_problem,
)
from import_service.domain.messages import check_header as contract_header
from import_service.domain.rows import FileFormat, FileFormatError, FileRow
from import_service.service.access import SchoolAccess
from import_service.service.job_guard import JobGuard
from import_service.service.ports import RowReader, RowReaders, RowsPublisher, Store
from shared.errors import FieldViolation, RollcallError, invalid, invalid_fields
from shared.grpc_kit.auth import Caller

PUBLISH_CHUNK_ROWS = 500
MAX_SCHOOL_ID_BYTES = 250  # rows.<school_id> is an AMQP short string (at most 255 bytes)


@dataclass(frozen=True)
class UploadHeader:
    school_id: str
    mode: ImportMode | None
    sensitive_fields_update: bool
    dry_run: bool
    source_name: str
    file_format: FileFormat | None
    full_roster: bool = False


def check_header(header: UploadHeader) -> None:
    """Every problem of the header at once, before anything is read, stored or published: the
    school id as the queue contract wants it (the upload's rows travel the queue), storable text."""
    problems: list[FieldViolation] = []
    if not header.school_id:
        problems.append(FieldViolation("header.school_id", "required (at most 128 characters)"))
    elif (school_problem := _school_id_problem(header.school_id)) is not None:
        problems.append(FieldViolation("header.school_id", school_problem))
    if header.mode is None:
        problems.append(FieldViolation("header.mode", "required"))
    if header.file_format is None:
        problems.append(FieldViolation("header.format", "required"))
    if header.sensitive_fields_update and header.mode is ImportMode.ONGOING_SYNC:
        problems.append(FieldViolation("header.sensitive_fields_update", "only with IMPORT_MODE_MANUAL_FILE"))
    if len(header.source_name) > MAX_SOURCE_NAME_CHARS:
        problems.append(FieldViolation("header.source_name", f"at most {MAX_SOURCE_NAME_CHARS} characters"))
    elif (text_problem := storable_text_problem(header.source_name)) is not None:
        problems.append(FieldViolation("header.source_name", text_problem))
    if problems:
        raise invalid_fields(problems)


def _school_id_problem(school_id: str) -> str | None:
    """What the queue contract would say about rows of this school (None: they would be accepted)."""
    try:
        contract_header("upload", school_id, school_id, mode_set=True)
    except ContractViolation as violation:
        if len(school_id) > 128 or not school_id.isprintable():
            return "is not a school id (at most 128 printable characters)"
        return violation.detail
    if len(school_id.encode()) > MAX_SCHOOL_ID_BYTES:
        return f"is too long for a routing key (at most {MAX_SCHOOL_ID_BYTES} bytes as UTF-8)"
    return None


class _Upload:
    """One file on its way to the queue."""

    def __init__(self, store: Store, publisher: RowsPublisher, guard: JobGuard, spec: JobSpec) -> None:
        self._store = store
        self._publisher = publisher
        self._guard = guard
        self.spec = spec
        self.published = 0
        self.started = False
        self._pending: list[FileRow] = []

    async def add(self, rows: list[FileRow], *, final: bool = False) -> None:
        self._pending.extend(rows)
        while len(self._pending) >= PUBLISH_CHUNK_ROWS or (final and self._pending):
            chunk, self._pending = self._pending[:PUBLISH_CHUNK_ROWS], self._pending[PUBLISH_CHUNK_ROWS:]
            await self._start()
            await self._publisher.publish_rows(self.spec, chunk)
            self.published += len(chunk)

    async def end(self) -> Job:
        await self._start()
        await self._publisher.publish_end(self.spec, self.published)
        job = await self._store.jobs.get(self.spec.job_id)
        assert job is not None
        return job

    async def _start(self) -> None:
        if not self.started:
            guarded = await self._guard.guarded(self.spec, wait=False)
            await self._store.jobs.ensure(self.spec, guarded=guarded)
            self.started = True


class Uploads:
    def __init__(
        self,
        store: Store,
        publisher: RowsPublisher,
        access: SchoolAccess,
        readers: RowReaders,
        guard: JobGuard,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._access = access
        self._readers = readers
        self._guard = guard

    async def submit(self, caller: Caller, header: UploadHeader, chunks: AsyncIterator[bytes]) -> Job:
        check_header(header)
        assert header.mode is not None and header.file_format is not None
        await self._access.require(caller, header.school_id)
        spec = JobSpec(
            job_id=str(uuid.uuid4()),
            school_id=header.school_id,
            mode=header.mode,
            sensitive_fields_update=header.sensitive_fields_update,
            dry_run=header.dry_run,
            source_name=header.source_name,
            full_roster=header.full_roster,
        )
        upload = _Upload(self._store, self._publisher, self._guard, spec)
        reader = self._readers(header.file_format)
        try:
            await _read(reader, upload, chunks)
        except FileFormatError as problem:
            raise await _stopped(upload, invalid("chunk", str(problem))) from None
        except RollcallError as refusal:
            raise await _stopped(upload, refusal) from None
        return await upload.end()


async def _stopped(upload: _Upload, error: RollcallError) -> RollcallError:
    """Ends a partly published upload so its job completes; the error then names that job. Every row
    read before the problem is published first (none is dropped); an upload that had published
    nothing yet is refused whole and leaves no job."""
    if not upload.started:
        return error
    await upload.add([], final=True)
    await upload.end()
    note = f"; the {upload.published} rows before it were imported as job {upload.spec.job_id}"
    return RollcallError(error.reason, error.message + note, error.violations)


async def _read(reader: RowReader, upload: _Upload, chunks: AsyncIterator[bytes]) -> None:
    async for chunk in chunks:
        await upload.add(reader.feed(chunk))
    await upload.add(reader.finish(), final=True)
