"""Identity's outbox rows → ``rollcall.events.v1.Event`` (the relay's ``encode``).

The snapshot is the user or school row as the change's transaction saw it, mapped by the same
functions that read those rows everywhere else and converted like any RPC answer, so an event's
user is exactly what ``GetUser`` answered right after the change.
"""

from __future__ import annotations

from identity_service.adapters.grpc import converters as to
from identity_service.adapters.postgres.events import snapshot_row
from identity_service.adapters.postgres.schools import _school
from identity_service.adapters.postgres.user_rows import to_user
from identity_service.domain.events import EventKind
from shared.events.outbox import OutboxRow, event_of
from shared.proto.rollcall.events.v1 import events_pb2 as pb

SOURCE = "//rollcall/identity"


def encode_event(row: OutboxRow) -> pb.Event:
    event = event_of(row)
    snapshot = row.snapshot or {}
    if row.kind == EventKind.USER.value and row.snapshot:
        event.user.user.CopyFrom(to.user(to_user(snapshot_row(snapshot))))
        event.user.changed_fields.extend(row.changed_fields)
    elif row.kind == EventKind.SCHOOL.value and row.snapshot:
        event.school.school.CopyFrom(to.school(_school(snapshot_row(snapshot))))
    else:  # deleted (or gone before its event was written)
        event.user_deleted.user_id = row.subject
        event.user_deleted.school_id = str(snapshot.get("school_id") or "")
    return event
