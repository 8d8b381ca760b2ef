"""The import service's outbox rows → ``rollcall.events.v1.Event`` (the relay's ``encode``): the job
as the trigger saw it when it completed or was held, read by the same mapping as every job read and
converted like any ImportJob answer."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from import_service.adapters.grpc.convert import job_to_proto
from import_service.adapters.postgres.jobs_repo import job_from_record
from shared.events.outbox import OutboxRow, event_of
from shared.proto.rollcall.events.v1 import events_pb2 as pb

SOURCE = "//rollcall/import"


def encode_event(row: OutboxRow) -> pb.Event:
    event = event_of(row)
    event.job.job.CopyFrom(job_to_proto(job_from_record(_record(row.snapshot or {}))))
    return event


def _record(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A ``jobs`` row as JSON → what ``job_from_record`` reads (times parsed, counters as text)."""
    record = dict(snapshot)
    for name in ("create_time", "complete_time"):
        if isinstance(record.get(name), str):
            record[name] = datetime.fromisoformat(record[name])
    record["field_changes"] = json.dumps(record.get("field_changes") or {})
    return record
