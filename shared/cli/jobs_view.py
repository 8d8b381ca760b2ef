"""Showing import jobs: progress while they run, counts and failed rows when they end, and what a
job is besides its counts (held and why, full roster, undo, re-drive, dry run)."""

from __future__ import annotations

import json
from typing import Any

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.cli.clients import Target
from shared.grpc_kit.errors import error_info
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

console = Console(stderr=True)
WATCH_TIMEOUT_SECONDS = 3600.0


def bars_off(show_progress: bool) -> bool:
    """Progress bars only on a terminal: piped or captured, stderr carries the lines that matter
    (a bar's last frame would be one more line before an error)."""
    return not show_progress or not console.is_terminal


def job_dict(job: pb.ImportJob) -> dict[str, Any]:
    return json_format.MessageToDict(job, always_print_fields_with_no_presence=True)


def state_name(job: pb.ImportJob) -> str:
    """``HELD``, ``COMPLETED``, ... (the enum name without its prefix)."""
    return pb.ImportJobState.Name(job.state).removeprefix("IMPORT_JOB_STATE_")


def hold_percent(hold: pb.JobHold) -> float:
    """The share of the school's students the job's preview changes or archives, in percent."""
    if hold.school_students <= 0:
        return 100.0 if hold.sensitive_changes + hold.archives else 0.0
    return (hold.sensitive_changes + hold.archives) * 100 / hold.school_students


def hold_exceeded(hold: pb.JobHold) -> bool:
    """The import service's rule (``domain.jobs.Hold.exceeded``): more than the threshold, 0 = off."""
    if hold.threshold_percent <= 0:
        return False
    return (hold.sensitive_changes + hold.archives) * 100 > hold.threshold_percent * hold.school_students


def hold_dict(job: pb.ImportJob) -> dict[str, Any] | None:
    """The job's hold figures and the percent they come to (None: the job has none)."""
    if not job.HasField("hold"):
        return None
    hold = job.hold
    return {
        "sensitive_changes": hold.sensitive_changes,
        "archives": hold.archives,
        "school_students": hold.school_students,
        "threshold_percent": hold.threshold_percent,
        "percent": round(hold_percent(hold), 2),
        "exceeded": hold_exceeded(hold),
    }


def hold_line(hold: pb.JobHold) -> str:
    """``3 sensitive changes + 0 archives = 30.0 % of 10 students (threshold 10 %)``."""
    changes = _plural(hold.sensitive_changes, "sensitive change")
    archives = _plural(hold.archives, "archive")
    students = _plural(hold.school_students, "student")
    threshold = f"threshold {hold.threshold_percent} %" if hold.threshold_percent else "threshold off"
    return f"{changes} + {archives} = {hold_percent(hold):.1f} % of {students} ({threshold})"


def job_notes(job: pb.ImportJob) -> list[str]:
    """What the counts table does not say, one line each: the job's kind and, for a guarded job,
    its hold figures and what staff may do next."""
    notes: list[str] = []
    kind = [
        name
        for name, on in (
            ("full roster (students it does not name are archived)", job.full_roster),
            ("sensitive fields", job.sensitive_fields_update),
            ("dry run (nothing applied)", job.dry_run),
        )
        if on
    ]
    if kind:
        notes.append("job: " + ", ".join(kind))
    if job.parent_job_id:
        notes.append(f"re-drive of job {job.parent_job_id}")
    if job.undo_of_job_id:
        c = job.counts
        notes.append(
            f"undo of job {job.undo_of_job_id}: {c.updated} updated, {c.deleted} deleted, "
            f"{c.skipped} skipped (changed since)"
        )
    if (note := hold_note(job)) is not None:
        notes.append(note)
    if job.state == pb.IMPORT_JOB_STATE_HELD:
        notes.append(
            f"nothing applied yet: `rollcall import hold {job.job_id}` shows the preview; "
            "`release` applies it, `discard` drops it"
        )
    return notes


def hold_note(job: pb.ImportJob) -> str | None:
    """The job's hold figures and what became of the hold, one line (None: nothing to say)."""
    state = state_name(job)
    if not job.HasField("hold"):
        return "discarded, nothing applied" if state == "DISCARDED" else None
    line = hold_line(job.hold)
    if state == "HELD":
        return f"held: {line}"
    if state == "DISCARDED":
        return f"discarded, nothing applied; it was held for {line}"
    if not hold_exceeded(job.hold):
        return f"guard: {line}, within the threshold"
    if state == "COMPLETED":
        return f"released; it was held for {line}"
    return f"released, applying; it was held for {line}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


async def wait_for_job(target: Target, job_id: str, *, show_progress: bool) -> pb.ImportJob:
    """Follow WatchImportJob until the job ends — COMPLETED, DISCARDED, or HELD (waiting for staff) —
    with a progress bar of rows recorded and the job's state; returns the last job seen."""
    channel, stub = target.importer()
    last = pb.ImportJob()
    try:
        with Progress(
            TextColumn("[bold]job {task.fields[job]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=console,
            disable=bars_off(show_progress),
        ) as bar:
            task = bar.add_task("job", total=None, job=job_id[:8], state="")
            call = stub.WatchImportJob(
                pb.WatchImportJobRequest(job_id=job_id),
                metadata=target.metadata(),
                timeout=WATCH_TIMEOUT_SECONDS,
            )
            async for job in call:
                last = job
                bar.update(
                    task, total=job.total_rows or None, completed=job.rows_received, state=state_name(job)
                )
    finally:
        await channel.close()
    return last


async def failed_rows(target: Target, job_id: str, limit: int) -> list[pb.RowRecord]:
    channel, stub = target.importer()
    try:
        reply = await stub.ListRowResults(
            pb.ListRowResultsRequest(job_id=job_id, outcomes=[rows_pb.ROW_OUTCOME_FAILED], page_size=limit),
            metadata=target.metadata(),
            timeout=30,
        )
        return list(reply.results)
    finally:
        await channel.close()


def print_job(
    job: pb.ImportJob,
    failures: list[pb.RowRecord],
    as_json: bool,
    extra: dict[str, Any] | None = None,
) -> None:
    """The job's counts table and notes (``job_notes``), then its failed rows; with ``as_json`` the
    job as proto JSON with ``failedRows`` and the ``extra`` keys."""
    if as_json:
        payload = job_dict(job)
        payload["failedRows"] = [json_format.MessageToDict(r) for r in failures]
        payload.update(extra or {})
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"job {job.job_id} — {state_name(job)}", show_header=True)
    names = ("rows", "created", "updated", "unchanged", "skipped", "failed", "approved", "archived")
    for name in (*names, "deleted", "dead letters"):
        table.add_column(name, justify="right")
    c = job.counts
    counted: tuple[int, ...] = (job.rows_received, c.created, c.updated, c.unchanged, c.skipped, c.failed)
    counted += (c.approved, c.archived, c.deleted)
    table.add_row(*map(str, counted), str(job.dead_lettered))
    out = Console()
    out.print(table)
    for note in job_notes(job):
        out.print(note, highlight=False, markup=False, soft_wrap=True)
    print_failures(failures)


def print_failures(failures: list[pb.RowRecord]) -> None:
    if not failures:
        return
    rows = Table(title="failed rows", show_header=True)
    for name in ("row", "username", "email", "reason", "message"):
        rows.add_column(name)
    for record in failures:
        rows.add_row(
            str(record.row_number),
            record.row.username,
            record.row.email_address,
            record.reason,
            record.message,
        )
    Console().print(rows)


def explain(error: grpc.aio.AioRpcError) -> str:
    """One line: the gRPC code, the ErrorInfo reason (when the error has one) and the message."""
    info = error_info(error)
    reason = f" {info.reason}" if info is not None and info.reason else ""
    details = " ".join((error.details() or "").split())
    return f"{error.code().name}{reason}: {details}"
