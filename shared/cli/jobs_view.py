"""Showing import jobs: progress while they run, counts and failed rows when they end."""

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


def job_dict(job: pb.ImportJob) -> dict[str, Any]:
    return json_format.MessageToDict(job, always_print_fields_with_no_presence=True)


async def wait_for_job(target: Target, job_id: str, *, show_progress: bool) -> pb.ImportJob:
    """Follow WatchImportJob until COMPLETED, with a progress bar of rows recorded."""
    channel, stub = target.importer()
    last = pb.ImportJob()
    try:
        with Progress(
            TextColumn("[bold]job {task.fields[job]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=console,
            disable=not show_progress,
        ) as bar:
            task = bar.add_task("job", total=None, job=job_id[:8])
            call = stub.WatchImportJob(
                pb.WatchImportJobRequest(job_id=job_id),
                metadata=target.metadata(),
                timeout=WATCH_TIMEOUT_SECONDS,
            )
            async for job in call:
                last = job
                bar.update(task, total=job.total_rows or None, completed=job.rows_received)
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


def print_job(job: pb.ImportJob, failures: list[pb.RowRecord], as_json: bool) -> None:
    if as_json:
        payload = job_dict(job)
        payload["failedRows"] = [json_format.MessageToDict(r) for r in failures]
        print(json.dumps(payload, indent=2))
        return
    state = pb.ImportJobState.Name(job.state).removeprefix("IMPORT_JOB_STATE_")
    table = Table(title=f"job {job.job_id} — {state}", show_header=True)
    names = ("rows", "created", "updated", "unchanged", "skipped", "failed", "approved", "archived")
    for name in (*names, "dead letters"):
        table.add_column(name, justify="right")
    c = job.counts
    counted: tuple[int, ...] = (job.rows_received, c.created, c.updated, c.unchanged, c.skipped, c.failed)
    counted += (c.approved, c.archived)
    table.add_row(*map(str, counted), str(job.dead_lettered))
    Console().print(table)
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
