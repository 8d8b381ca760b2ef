"""``rollcall students approve|decline``: bulk decisions through BatchApproveStudents /
BatchDeclineStudents, any number of ids in chunks of at most 500 (the RPC's bound).

Each chunk has its own request_id, derived from one ``--request-id`` (``<id>-<chunk index>``), so
running the same command again with the same ``--request-id`` replays every chunk's first answer
and decides nothing twice — even when a run stopped half way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from shared.cli.clients import Target
from shared.cli.jobs_view import bars_off, console
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res

CHUNK = 500  # BatchApproveStudents / BatchDeclineStudents take 1..500 ids
REQUEST_ID_MAX = 128  # the services' bound on request_id
_SUFFIX_ROOM = 8  # "-" and the chunk index


@dataclass(frozen=True)
class Decided:
    """One id's result, in the order asked."""

    user_id: str
    ok: bool
    status: str
    reason: str
    message: str


def chunk_request_ids(request_id: str, chunks: int) -> list[str]:
    """One request_id per chunk, derived from ``request_id`` (a new one when empty)."""
    base = request_id or str(uuid.uuid4())
    return [f"{base}-{index}" for index in range(chunks)]


def check_request_id(request_id: str) -> str | None:
    """Why ``request_id`` cannot be used as a base, or None."""
    if len(request_id) > REQUEST_ID_MAX - _SUFFIX_ROOM:
        return f"--request-id is at most {REQUEST_ID_MAX - _SUFFIX_ROOM} characters"
    return None


async def decide(
    target: Target,
    *,
    approve: bool,
    school_id: str,
    user_ids: Sequence[str],
    text: str,
    request_id: str,
    show_progress: bool,
) -> tuple[str, list[Decided]]:
    """Decides every id, CHUNK at a time; returns the base request_id and one result per id.

    A whole-chunk refusal (an unknown school, not staff) raises the RPC error: earlier chunks stay
    decided, and a re-run with the same request id replays them.
    """
    pieces = [list(user_ids[start : start + CHUNK]) for start in range(0, len(user_ids), CHUNK)]
    base = request_id or str(uuid.uuid4())
    ids = chunk_request_ids(base, len(pieces))
    results: list[Decided] = []
    channel, stub = target.identity()
    verb = "approving" if approve else "declining"
    try:
        with Progress(
            TextColumn(f"[bold]{verb}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("students"),
            console=console,
            disable=bars_off(show_progress),
        ) as bar:
            task = bar.add_task(verb, total=len(user_ids))
            for piece, chunk_id in zip(pieces, ids, strict=True):
                if approve:
                    reply = await stub.BatchApproveStudents(
                        pb.BatchApproveStudentsRequest(
                            school_id=school_id, user_ids=piece, note=text, request_id=chunk_id
                        ),
                        metadata=target.metadata(),
                        timeout=120,
                    )
                else:
                    reply = await stub.BatchDeclineStudents(
                        pb.BatchDeclineStudentsRequest(
                            school_id=school_id, user_ids=piece, reason=text, request_id=chunk_id
                        ),
                        metadata=target.metadata(),
                        timeout=120,
                    )
                results.extend(_decided(r) for r in reply.results)
                bar.advance(task, len(piece))
    finally:
        await channel.close()
    return base, results


def _decided(result: pb.BatchDecisionResult) -> Decided:
    status = ""
    if result.HasField("user"):
        status = res.UserStatus.Name(result.user.status).removeprefix("USER_STATUS_")
    ok = not result.error_reason
    return Decided(result.user_id, ok, status, result.error_reason, result.error_message)


def print_decisions(approve: bool, request_id: str, results: list[Decided], as_json: bool) -> None:
    done = sum(1 for r in results if r.ok)
    failed = len(results) - done
    verb = "approved" if approve else "declined"
    if as_json:
        payload = {
            "request_id": request_id,
            verb: done,
            "failed": failed,
            "results": [asdict(r) for r in results],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"students {verb}", show_header=True)
    table.add_column("id")
    table.add_column("result")
    table.add_column("message")
    for r in results:
        table.add_row(r.user_id, "ok" if r.ok else f"[red]{r.reason}[/red]", r.message)
    out = Console()
    out.print(table)
    out.print(f"{done} {verb}, {failed} failed (request id {request_id})")
