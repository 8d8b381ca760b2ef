"""What a relay reads from a service's event outbox, and the port it reads it through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from google.protobuf import timestamp_pb2

from shared.proto.rollcall.events.v1 import events_pb2 as pb


@dataclass(frozen=True)
class OutboxRow:
    """One event as its service's outbox keeps it: ``position`` orders the outbox (commit order for
    one subject), ``snapshot`` is the subject right after the change (service-specific JSON)."""

    position: int
    id: str
    type: str
    subject: str
    sequence: int
    time: datetime
    actor_id: str
    client: str
    kind: str
    changed_fields: tuple[str, ...]
    snapshot: dict[str, Any] | None


def event_of(row: OutboxRow) -> pb.Event:
    """The row's event with everything but its payload (each service's encoder adds that)."""
    time = timestamp_pb2.Timestamp()
    time.FromDatetime(row.time)
    return pb.Event(
        id=row.id,
        type=row.type,
        subject=row.subject,
        sequence=row.sequence,
        time=time,
        actor_id=row.actor_id,
        client=row.client,
    )


class Outbox(Protocol):
    """A service's outbox, read by the one relay that leads (on its leader connection)."""

    async def pending(self, limit: int) -> list[OutboxRow]:
        """The oldest unpublished rows, by position."""
        ...

    async def mark_published(self, positions: Sequence[int]) -> None: ...

    async def purge(self, published_before: datetime, limit: int) -> int:
        """Deletes up to ``limit`` rows published before the time; how many it deleted."""
        ...

    async def backlog(self) -> int:
        """Rows not published yet."""
        ...
