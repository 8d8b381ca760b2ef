"""Domain ↔ ImportService protobuf messages."""

from __future__ import annotations

from import_service.adapters.wire import (
    changes_to_proto,
    outcome_from_proto,
    outcome_to_proto,
    timestamp_to_proto,
)
from import_service.domain.jobs import Archive, Hold, Job, JobState, Outcome, RecordedRow
from import_service.domain.rows import FileFormat
from import_service.service.uploads import UploadHeader
from shared.amqp.messages import mode_from_proto, mode_to_proto, row_to_proto
from shared.errors import invalid
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

_STATE = {
    JobState.RECEIVING: pb.IMPORT_JOB_STATE_RECEIVING,
    JobState.COMPLETED: pb.IMPORT_JOB_STATE_COMPLETED,
    JobState.HELD: pb.IMPORT_JOB_STATE_HELD,
    JobState.DISCARDED: pb.IMPORT_JOB_STATE_DISCARDED,
}
_FORMAT = {pb.FILE_FORMAT_CSV: FileFormat.CSV, pb.FILE_FORMAT_ONEROSTER_USERS: FileFormat.ONEROSTER_USERS}


def job_to_proto(job: Job) -> pb.ImportJob:
    spec, counts = job.spec, job.counts
    return pb.ImportJob(
        job_id=spec.job_id,
        parent_job_id=spec.parent_job_id,
        school_id=spec.school_id,
        mode=mode_to_proto(spec.mode),
        sensitive_fields_update=spec.sensitive_fields_update,
        dry_run=spec.dry_run,
        source_name=spec.source_name,
        state=_STATE[job.state],
        total_rows=job.total_rows or 0,
        rows_received=job.rows_recorded,
        counts=pb.ImportCounts(
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            skipped=counts.skipped,
            failed=counts.failed,
            approved=counts.approved,
            archived=counts.archived,
            field_changes=counts.field_changes,
            deleted=counts.deleted,
        ),
        dead_lettered=job.dead_lettered,
        create_time=timestamp_to_proto(job.create_time),
        complete_time=timestamp_to_proto(job.complete_time),
        full_roster=spec.full_roster,
        undo_of_job_id=spec.undo_of_job_id,
        hold=_hold(job.hold),
    )


def _hold(hold: Hold | None) -> pb.JobHold | None:
    if hold is None:
        return None
    return pb.JobHold(
        sensitive_changes=hold.sensitive_changes,
        archives=hold.archives,
        school_students=hold.school_students,
        threshold_percent=hold.threshold_percent,
    )


def archive_to_proto(archive: Archive) -> pb.JobArchive:
    return pb.JobArchive(
        user_id=archive.user_id,
        username=archive.username,
        email_address=archive.email_address,
        archive_time=timestamp_to_proto(archive.archive_time),
    )


def record_to_proto(record: RecordedRow) -> pb.RowRecord:
    result = record.result
    return pb.RowRecord(
        row_number=result.row_number,
        outcome=outcome_to_proto(result.outcome),
        approved=result.approved,
        user_id=result.user_id,
        reason=result.reason,
        message=result.message,
        row=row_to_proto(record.row),
        changes=changes_to_proto(result.changes),
    )


def outcomes_from_proto(values: list[int]) -> list[Outcome]:
    outcomes = []
    for index, value in enumerate(values):
        outcome = outcome_from_proto(value)
        if outcome is None:
            raise invalid(f"outcomes[{index}]", "not a row outcome")
        outcomes.append(outcome)
    return outcomes


def header_from_proto(header: pb.FileHeader) -> UploadHeader:
    return UploadHeader(
        school_id=header.school_id,
        mode=mode_from_proto(header.mode),
        sensitive_fields_update=header.sensitive_fields_update,
        dry_run=header.dry_run,
        source_name=header.source_name,
        file_format=_FORMAT.get(header.format),
        full_roster=header.full_roster,
    )
