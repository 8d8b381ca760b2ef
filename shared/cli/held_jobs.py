"""``rollcall import hold|release|discard|undo JOB``: guarded jobs and what staff decide about them.

A guarded job (sensitive fields or a full roster, at a school whose change threshold is on) is first
previewed as a dry run; when its preview would change or archive more than the threshold of the
school's students it is HELD. ``hold`` shows why (the hold figures against the threshold) and the
preview: every row with a field change, old → new (ListRowResults, every page) and, for a full
roster, every student it would archive (ListJobArchives, every page). ``release`` applies it (each
row decided afresh), ``discard`` ends it with nothing applied, ``undo`` puts back what a completed
job did, as a new job. Each decision carries a request id — a fresh UUID unless one is given — so
running the same command again with the same ``--request-id`` decides nothing twice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from shared.cli.changes_view import ChangeLine, change_lines
from shared.cli.clients import Target
from shared.cli.jobs_view import bars_off, console, hold_dict, hold_line, hold_note, state_name
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

REQUEST_ID_MAX = 128  # the import service's bound on request_id
PAGE_SIZE = 500
CHANGING_OUTCOMES = (
    rows_pb.ROW_OUTCOME_CREATED,
    rows_pb.ROW_OUTCOME_UPDATED,
    rows_pb.ROW_OUTCOME_ARCHIVED,
    rows_pb.ROW_OUTCOME_DELETED,
)
"""The outcomes whose rows list field changes (UNCHANGED, SKIPPED and FAILED rows list none)."""


class Decision(StrEnum):
    release = "release"
    discard = "discard"
    undo = "undo"


def request_id_problem(request_id: str) -> str | None:
    """Why ``--request-id`` cannot be sent, or None."""
    if len(request_id) > REQUEST_ID_MAX:
        return f"--request-id is at most {REQUEST_ID_MAX} characters"
    return None


def request_id_or_new(request_id: str) -> str:
    """The given request id, or a fresh UUID (a new decision)."""
    return request_id or str(uuid.uuid4())


async def decide_job(target: Target, decision: Decision, job_id: str, request_id: str) -> pb.ImportJob:
    """Release or discard the HELD job ``job_id`` (answers it), or undo it (answers the new undo job)."""
    channel, stub = target.importer()
    md = target.metadata()
    try:
        if decision is Decision.release:
            release = pb.ReleaseImportJobRequest(job_id=job_id, request_id=request_id)
            return await stub.ReleaseImportJob(release, metadata=md, timeout=60)
        if decision is Decision.discard:
            discard = pb.DiscardImportJobRequest(job_id=job_id, request_id=request_id)
            return await stub.DiscardImportJob(discard, metadata=md, timeout=60)
        undo = pb.UndoImportJobRequest(job_id=job_id, request_id=request_id)
        return await stub.UndoImportJob(undo, metadata=md, timeout=60)
    finally:
        await channel.close()


def decided_line(decision: Decision, job: pb.ImportJob, job_id: str, request_id: str) -> str:
    """What a decision did, one line (rich markup)."""
    if decision is Decision.undo:
        return f"undo job [bold]{job.job_id}[/bold] of job {job_id} (request id {request_id})"
    if decision is Decision.release:
        return f"released job [bold]{job_id}[/bold]: its rows are applied afresh (request id {request_id})"
    return f"discarded job [bold]{job_id}[/bold]: nothing applied (request id {request_id})"


@dataclass(frozen=True)
class ArchiveLine:
    """A student a full roster archived (``archive_time`` empty: would archive, while HELD)."""

    user_id: str
    username: str
    email_address: str
    archive_time: str


@dataclass(frozen=True)
class HoldView:
    """A job, the field changes of its rows (a preview while HELD) and its archives."""

    job: pb.ImportJob
    changes: list[ChangeLine]
    archives: list[ArchiveLine]

    @property
    def preview(self) -> bool:
        """Nothing of it was applied: held, discarded, or a dry run."""
        held = self.job.state in (pb.IMPORT_JOB_STATE_HELD, pb.IMPORT_JOB_STATE_DISCARDED)
        return held or self.job.dry_run


async def read_hold(target: Target, job_id: str, *, show_progress: bool) -> HoldView:
    """The job, every change of its rows and every archive (all pages), with a progress bar."""
    channel, stub = target.importer()
    try:
        job = await stub.GetImportJob(
            pb.GetImportJobRequest(job_id=job_id), metadata=target.metadata(), timeout=30
        )
        c = job.counts
        changing = c.created + c.updated + c.archived + c.deleted
        with Progress(
            TextColumn("[bold]reading {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            disable=bars_off(show_progress),
            transient=True,
        ) as bar:
            rows = bar.add_task("rows", total=changing or None)
            changes = await change_lines(
                target, stub, job_id, CHANGING_OUTCOMES, lambda done: bar.update(rows, completed=done)
            )
            archives: list[ArchiveLine] = []
            if job.full_roster:
                total = job.hold.archives if job.HasField("hold") else 0
                task = bar.add_task("archives", total=total or None)
                token = ""
                while True:
                    page = await stub.ListJobArchives(
                        pb.ListJobArchivesRequest(job_id=job_id, page_size=PAGE_SIZE, page_token=token),
                        metadata=target.metadata(),
                        timeout=60,
                    )
                    archives.extend(_archive_line(a) for a in page.archives)
                    bar.update(task, completed=len(archives))
                    token = page.next_page_token
                    if not token:
                        break
    finally:
        await channel.close()
    return HoldView(job, changes, archives)


def _archive_line(archive: pb.JobArchive) -> ArchiveLine:
    when = archive.archive_time.ToJsonString() if archive.HasField("archive_time") else ""
    return ArchiveLine(archive.user_id, archive.username, archive.email_address, when)


def hold_payload(view: HoldView) -> dict[str, Any]:
    job = view.job
    return {
        "job_id": job.job_id,
        "school_id": job.school_id,
        "state": state_name(job),
        "held": job.state == pb.IMPORT_JOB_STATE_HELD,
        "preview": view.preview,
        "full_roster": job.full_roster,
        "sensitive_fields_update": job.sensitive_fields_update,
        "hold": hold_dict(job),
        "changes": [asdict(line) for line in view.changes],
        "archives": [asdict(line) for line in view.archives],
    }


def headline(job: pb.ImportJob) -> str:
    """What the job's state means for its preview, one line."""
    state = state_name(job)
    if state == "HELD":
        return f"job {job.job_id} is HELD: nothing applied; release it to apply, discard it to drop it"
    if state == "DISCARDED":
        return f"job {job.job_id} is DISCARDED: nothing was applied"
    return f"job {job.job_id} is {state}, not held"


def print_hold(view: HoldView, as_json: bool) -> None:
    if as_json:
        print(json.dumps(hold_payload(view), indent=2, ensure_ascii=False))
        return
    job = view.job
    out = Console()
    out.print(headline(job), highlight=False, markup=False, soft_wrap=True)
    if job.state == pb.IMPORT_JOB_STATE_HELD:
        why = hold_line(job.hold) if job.HasField("hold") else "(the service gave no figures)"
        out.print(f"why: {why}", highlight=False, markup=False, soft_wrap=True)
    elif (note := hold_note(job)) is not None:
        out.print(note, highlight=False, markup=False, soft_wrap=True)
    verb = "would change" if view.preview else "changed"
    table = Table(title=f"rows it {verb} ({len({c.row_number for c in view.changes})})", show_header=True)
    for name in ("row", "outcome", "user", "field", "old → new"):
        table.add_column(name, justify="right" if name == "row" else "left")
    for line in view.changes:
        table.add_row(
            str(line.row_number),
            line.outcome,
            line.user_id,
            line.field,
            f"{line.old_value or '∅'} → {line.new_value or '∅'}",
        )
    out.print(table)
    if not job.full_roster:
        return
    archived = "would archive" if view.preview else "archived"
    students = Table(title=f"students it {archived} ({len(view.archives)})", show_header=True)
    for name in ("user", "username", "email", "archived at"):
        students.add_column(name)
    for archive in view.archives:
        when = archive.archive_time or "(would be)"
        students.add_row(archive.user_id, archive.username, archive.email_address, when)
    out.print(students)
