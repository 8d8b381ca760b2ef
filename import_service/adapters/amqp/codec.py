"""Message bodies → domain messages: ``application/x-protobuf`` or ``application/json`` (proto3
JSON mapping, unknown fields refused), bounded in size. Decoding is done here, once; the decoded
values are checked against the queue contract by the domain (``domain.messages``). Encoding is the
connectors' side, in ``shared.amqp.messages``."""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from import_service.domain.messages import (
    MAX_BODY_BYTES,
    MAX_JOB_ID_CHARS,
    ContractViolation,
    DeadReason,
    ImportMessage,
    end_message,
    job_spec,
    rows_message,
)
from shared.amqp.messages import JSON, PROTOBUF, mode_from_proto, row_from_proto
from shared.amqp.topology import school_of
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb


def decode(body: bytes, content_type: str | None, routing: str) -> ImportMessage:
    """The message in ``body``; raises ContractViolation for anything off-contract."""
    if len(body) > MAX_BODY_BYTES:
        raise ContractViolation(DeadReason.BODY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
    message = _parse(body, (content_type or "").split(";", 1)[0].strip().lower())
    spec = job_spec(
        job_id=message.job_id,
        school_id=message.school_id,
        routing_school=school_of(routing),
        mode=mode_from_proto(message.mode),
        sensitive_fields_update=message.sensitive_fields_update,
        dry_run=message.dry_run,
        source_name=message.source_name,
        parent_job_id=message.parent_job_id,
        full_roster=message.full_roster,
    )
    kind = message.WhichOneof("body")
    if kind == "rows":
        rows = message.rows.rows
        return rows_message(spec, [row.row_number for row in rows], map(row_from_proto, rows))
    if kind == "end":
        return end_message(spec, message.end.total_rows)
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
