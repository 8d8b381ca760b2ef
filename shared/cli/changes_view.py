"""``rollcall import changes JOB``: every field a job's rows changed (or, in a dry run, would
change), old → new, paged through ListRowResults, with the job's per-field counts."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.table import Table

from shared.cli.clients import Target
from shared.cli.jobs_view import hold_dict, hold_note, state_name
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as import_grpc

PAGE_SIZE = 500


@dataclass(frozen=True)
class ChangeLine:
    """One field one row changed."""

    row_number: int
    outcome: str
    user_id: str
    field: str
    old_value: str
    new_value: str


async def job_changes(target: Target, job_id: str) -> tuple[pb.ImportJob, list[ChangeLine]]:
    """The job and every change of its rows, by row number (all pages of ListRowResults)."""
    channel, stub = target.importer()
    try:
        job = await stub.GetImportJob(
            pb.GetImportJobRequest(job_id=job_id), metadata=target.metadata(), timeout=30
        )
        return job, await change_lines(target, stub, job_id)
    finally:
        await channel.close()


async def change_lines(
    target: Target,
    stub: import_grpc.ImportServiceStub,
    job_id: str,
    outcomes: Sequence[rows_pb.RowOutcome.ValueType] = (),
    read: Callable[[int], None] | None = None,
) -> list[ChangeLine]:
    """Every change of the job's rows (only rows of ``outcomes`` when given), by row number;
    ``read(rows)`` after each page with the number of rows read so far."""
    lines: list[ChangeLine] = []
    token = ""
    rows = 0
    while True:
        page = await stub.ListRowResults(
            pb.ListRowResultsRequest(job_id=job_id, outcomes=outcomes, page_size=PAGE_SIZE, page_token=token),
            metadata=target.metadata(),
            timeout=60,
        )
        for record in page.results:
            outcome = rows_pb.RowOutcome.Name(record.outcome).removeprefix("ROW_OUTCOME_")
            lines.extend(
                ChangeLine(record.row_number, outcome, record.user_id, c.field, c.old_value, c.new_value)
                for c in record.changes
            )
        rows += len(page.results)
        if read is not None:
            read(rows)
        token = page.next_page_token
        if not token:
            return lines


def print_changes(job: pb.ImportJob, lines: list[ChangeLine], as_json: bool) -> None:
    counts = dict(sorted(job.counts.field_changes.items()))
    state = state_name(job)
    if as_json:
        payload = {
            "job_id": job.job_id,
            "state": state,
            "hold": hold_dict(job),
            "field_changes": counts,
            "changes": [asdict(line) for line in lines],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    title = f"changes of job {job.job_id} — {state}" + (" (dry run: nothing applied)" if job.dry_run else "")
    table = Table(title=title, show_header=True)
    for name in ("row", "outcome", "field", "old → new"):
        table.add_column(name, justify="right" if name == "row" else "left")
    for line in lines:
        table.add_row(
            str(line.row_number),
            line.outcome,
            line.field,
            f"{line.old_value or '∅'} → {line.new_value or '∅'}",
        )
    out = Console()
    if state in ("HELD", "DISCARDED"):
        out.print(f"{state}: the preview of a guarded job, nothing applied", highlight=False)
    out.print(table)
    summary = ", ".join(f"{field} {count}" for field, count in counts.items()) or "none"
    out.print(f"rows changing each field: {summary}")
    if (note := hold_note(job)) is not None:
        out.print(note, highlight=False, markup=False, soft_wrap=True)
