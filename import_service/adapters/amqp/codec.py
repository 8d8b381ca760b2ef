"""Message bodies → domain messages: ``application/x-protobuf`` or ``application/json`` (proto3
JSON mapping, unknown fields refused), bounded in size, checked against the queue contract."""

from __future__ import annotations

import functools
import json

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from import_service.adapters.amqp.topology import school_of
from import_service.adapters.wire import mode_from_proto, mode_to_proto, row_from_proto, rows_to_proto
from import_service.domain.jobs import JobSpec
from import_service.domain.messages import (
    MAX_BODY_BYTES,
    MAX_JOB_ID_CHARS,
    MAX_SOURCE_NAME_CHARS,
    ContractViolation,
    DeadReason,
    EndMessage,
    ImportMessage,
    RowsMessage,
    check_header,
    check_row_numbers,
    check_text,
    check_total_rows,
)
from import_service.domain.rows import FileRow
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def decode(body: bytes, content_type: str | None, routing: str) -> ImportMessage:
    """The message in ``body``; raises ContractViolation for anything off-contract."""
    if len(body) > MAX_BODY_BYTES:
        raise ContractViolation(DeadReason.BODY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
    message = _parse(body, (content_type or "").split(";", 1)[0].strip().lower())
    mode = mode_from_proto(message.mode)
    check_header(message.job_id, message.school_id, school_of(routing), mode is not None)
    assert mode is not None
    check_text(message.job_id, "source_name", message.source_name)
    check_text(message.job_id, "parent_job_id", message.parent_job_id)
    spec = JobSpec(
        job_id=message.job_id,
        school_id=message.school_id,
        mode=mode,
        sensitive_fields_update=message.sensitive_fields_update,
        dry_run=message.dry_run,
        source_name=message.source_name[:MAX_SOURCE_NAME_CHARS],
        parent_job_id=message.parent_job_id[:128],
    )
    kind = message.WhichOneof("body")
    if kind == "rows":
        rows = message.rows.rows
        check_row_numbers(spec.job_id, [row.row_number for row in rows])
        # A row's own text (NUL included) is identity's to judge: FAILED INVALID_ROW for that row
        # alone (decision table row 1), the message's other rows applied. Rows are kept as bytes.
        return RowsMessage(spec, tuple(row_from_proto(row) for row in rows))
    if kind == "end":
        check_total_rows(spec.job_id, message.end.total_rows)
        return EndMessage(spec, message.end.total_rows)
    raise ContractViolation(DeadReason.NO_BODY, "the message carries neither rows nor end", spec.job_id)


def _parse(body: bytes, content_type: str) -> pb.ImportMessage:
    message = pb.ImportMessage()
    if content_type == PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError:
            raise ContractViolation(DeadReason.UNDECODABLE, "not a protobuf ImportMessage") from None
    elif content_type == JSON:
        try:
            json_format.Parse(body.decode("utf-8"), message, ignore_unknown_fields=False)
        except (json_format.ParseError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            detail = f"not a JSON ImportMessage: {str(exc)[:200]}"
            raise ContractViolation(DeadReason.UNDECODABLE, detail, _json_job_id(body)) from None
    else:
        detail = f"content type {content_type[:100]!r}; expected {PROTOBUF} or {JSON}"
        raise ContractViolation(DeadReason.UNKNOWN_CONTENT_TYPE, detail)
    return message


def _json_job_id(body: bytes) -> str | None:
    """The job id of a JSON body that is not a valid ImportMessage but still names its job, so the
    job can show the refusal (product rules: "the job shows it")."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    job_id = document.get("jobId", document.get("job_id")) if isinstance(document, dict) else None
    if isinstance(job_id, str) and 1 <= len(job_id) <= MAX_JOB_ID_CHARS and job_id.isprintable():
        return job_id
    return None


@functools.lru_cache(maxsize=256)
def _header(spec: JobSpec) -> bytes:
    """The job's header fields, serialized once per job: a message is its header's bytes followed by
    its body's (protobuf merges concatenated messages), so one-row messages do not rebuild the header."""
    return pb.ImportMessage(
        job_id=spec.job_id,
        school_id=spec.school_id,
        mode=mode_to_proto(spec.mode),
        sensitive_fields_update=spec.sensitive_fields_update,
        dry_run=spec.dry_run,
        source_name=spec.source_name,
        parent_job_id=spec.parent_job_id,
    ).SerializeToString()


def encode_rows(spec: JobSpec, rows: list[FileRow] | tuple[FileRow, ...]) -> bytes:
    body = pb.ImportMessage()
    body.rows.rows.extend(rows_to_proto(rows))
    return _header(spec) + body.SerializeToString()


def encode_end(spec: JobSpec, total_rows: int) -> bytes:
    body = pb.ImportMessage()
    body.end.total_rows = total_rows
    return _header(spec) + body.SerializeToString()
