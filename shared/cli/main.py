"""``rollcall``: publish student files like an SIS connector, follow jobs, export and re-drive failures,
and decide about guarded jobs (hold, release, discard, undo).

Every command talks to the running services (``make run``) and the broker; ``--json`` prints
machine-readable output for scripts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import grpc
import typer
from google.protobuf import json_format
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from import_service.domain.jobs import JobSpec
from import_service.domain.rows import FileFormat
from shared import tracing
from shared.cli import demo as demo_story
from shared.cli.changes_view import job_changes, print_changes
from shared.cli.clients import Target
from shared.cli.held_jobs import (
    Decision,
    decide_job,
    decided_line,
    print_hold,
    read_hold,
    request_id_or_new,
    request_id_problem,
)
from shared.cli.jobs_view import console, explain, failed_rows, print_failures, print_job, wait_for_job
from shared.cli.publishing import job_spec, publish_file
from shared.cli.schools import (
    MUTABLE_KINDS,
    SchoolChange,
    get_school,
    mute_kinds,
    print_school,
    split_list,
    update_school,
)
from shared.cli.students import check_request_id, decide, print_decisions
from shared.cli.uploading import upload_file, upload_header
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

app = typer.Typer(help="rollcall — identity and student-import services", no_args_is_help=True)
import_app = typer.Typer(help="Student-file imports", no_args_is_help=True)
app.add_typer(import_app, name="import")
students_app = typer.Typer(help="Pending students: bulk approve and decline", no_args_is_help=True)
app.add_typer(students_app, name="students")
school_app = typer.Typer(help="A school's settings", no_args_is_help=True)
app.add_typer(school_app, name="school")

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON on stdout instead of tables")]
FullRosterOption = Annotated[
    bool,
    typer.Option(
        "--full-roster",
        help="FILE is the school's whole student list: students it does not name are archived "
        "(guarded: held when it would change more than the school's threshold)",
    ),
]


class Mode(StrEnum):
    sync = "sync"
    manual = "manual"


class Format(StrEnum):
    csv = "csv"
    oneroster = "oneroster"


@app.callback()
def connect(
    ctx: typer.Context,
    identity: Annotated[str, typer.Option(envvar="ROLLCALL_IDENTITY_ADDR")] = "localhost:50051",
    importer: Annotated[
        str, typer.Option("--import-addr", envvar="ROLLCALL_IMPORT_ADDR")
    ] = "localhost:50052",
    amqp_url: Annotated[str, typer.Option(envvar="ROLLCALL_AMQP_URL")] = "amqp://guest:guest@localhost:5672/",
    prefix: Annotated[str, typer.Option(envvar="ROLLCALL_AMQP_PREFIX")] = "rollcall",
    token: Annotated[str, typer.Option(envvar="ROLLCALL_CLI_TOKEN", help="bearer token")] = Target.token,
    actor: Annotated[str, typer.Option(envvar="ROLLCALL_CLI_ACTOR", help="staff user id acted for")] = "",
    otlp_endpoint: Annotated[
        str, typer.Option(envvar="ROLLCALL_OTLP_ENDPOINT", help="OTLP/gRPC collector for traces")
    ] = "",
) -> None:
    ctx.obj = Target(identity, importer, amqp_url, prefix, token, actor)
    tracing.configure(otlp_endpoint or None, tracing.SERVICE_CLI, sql=False)  # spans flushed at exit


def _run(coro: object) -> None:
    try:
        asyncio.run(coro)  # type: ignore[arg-type]
    except grpc.aio.AioRpcError as exc:
        console.print(f"[red]error[/red] {escape(explain(exc))}", soft_wrap=True, highlight=False)
        sys.exit(1)


@import_app.command("publish")
def publish(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    school: Annotated[str, typer.Option(help="school id")],
    mode: Annotated[Mode, typer.Option()] = Mode.sync,
    sensitive: Annotated[bool, typer.Option(help="allow sensitive-field updates (manual only)")] = False,
    dry_run: Annotated[bool, typer.Option()] = False,
    full_roster: FullRosterOption = False,
    file_format: Annotated[Format, typer.Option("--format")] = Format.csv,
    rows_per_message: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    job_id: Annotated[str, typer.Option(help="default: a new UUID")] = "",
    wait: Annotated[bool, typer.Option(help="follow the job until it completes or is held")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Publish FILE's rows to the import queue as a connector would."""
    target: Target = ctx.obj
    spec = job_spec(
        job_id=job_id or str(uuid.uuid4()),
        school_id=school,
        manual=mode is Mode.manual,
        sensitive=sensitive,
        dry_run=dry_run,
        full_roster=full_roster,
        source_name=file.name,
    )
    fmt = FileFormat.ONEROSTER_USERS if file_format is Format.oneroster else FileFormat.CSV
    _run(_publish(target, file, spec, fmt, rows_per_message, wait, as_json))


async def _publish(
    target: Target, file: Path, spec: JobSpec, fmt: FileFormat, per_message: int, wait: bool, as_json: bool
) -> None:
    size = file.stat().st_size  # noqa: ASYNC240 - one stat before streaming the file
    with Progress(
        TextColumn("[bold]publishing {task.fields[name]}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    ) as bar:
        task = bar.add_task("publish", total=size, name=file.name, rows=0)
        total = await publish_file(
            file,
            spec,
            file_format=fmt,
            rows_per_message=per_message,
            amqp_url=target.amqp_url,
            prefix=target.prefix,
            progress=lambda done, rows: bar.update(task, completed=done, rows=rows),
        )
    if not as_json:
        console.print(f"published {total} rows as job [bold]{spec.job_id}[/bold]")
    if wait:
        await _follow(target, spec.job_id, as_json)
    elif as_json:
        print(f'{{"jobId": "{spec.job_id}", "rowsPublished": {total}}}')


async def _follow(target: Target, job_id: str, as_json: bool, extra: dict[str, str] | None = None) -> None:
    """Follow the job until it ends (COMPLETED, DISCARDED or HELD), then print it."""
    job = await wait_for_job(target, job_id, show_progress=not as_json)
    print_job(job, await failed_rows(target, job_id, 10), as_json, extra)


@import_app.command("status")
def status(
    ctx: typer.Context,
    job_id: str,
    wait: Annotated[bool, typer.Option()] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a job's state and counts (with --wait, follow it until it completes or is held)."""
    _run(_status(ctx.obj, job_id, wait, as_json))


async def _status(target: Target, job_id: str, wait: bool, as_json: bool) -> None:
    if wait:
        await _follow(target, job_id, as_json)
        return
    channel, stub = target.importer()
    try:
        job = await stub.GetImportJob(
            pb.GetImportJobRequest(job_id=job_id), metadata=target.metadata(), timeout=30
        )
    finally:
        await channel.close()
    print_job(job, await failed_rows(target, job_id, 10), as_json)


@import_app.command("failed")
def failed(
    ctx: typer.Context,
    job_id: str,
    output: Annotated[Path | None, typer.Option("--csv", help="write the failed rows as CSV")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List a job's failed rows, or export them (--csv FILE) in the upload format."""
    _run(_failed(ctx.obj, job_id, output, limit, as_json))


async def _failed(target: Target, job_id: str, output: Path | None, limit: int, as_json: bool) -> None:
    if output is None:
        rows = await failed_rows(target, job_id, limit)
        if as_json:
            print(json.dumps([json_format.MessageToDict(r) for r in rows], indent=2))
        else:
            print_failures(rows)
        return
    channel, stub = target.importer()
    written = 0
    try:
        with output.open("wb") as handle:
            call = stub.ExportFailedRows(
                pb.ExportFailedRowsRequest(job_id=job_id), metadata=target.metadata(), timeout=600
            )
            async for piece in call:
                handle.write(piece.csv_chunk)
                written += len(piece.csv_chunk)
    finally:
        await channel.close()
    console.print(f"wrote {written} bytes of failed rows to {output}")


@import_app.command("changes")
def changes(
    ctx: typer.Context,
    job_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List every field a job's rows changed (a dry run's: would change), old → new, by row."""
    _run(_changes(ctx.obj, job_id, as_json))


async def _changes(target: Target, job_id: str, as_json: bool) -> None:
    job, lines = await job_changes(target, job_id)
    print_changes(job, lines, as_json)


@import_app.command("retry")
def retry(
    ctx: typer.Context,
    job_id: str,
    sensitive: Annotated[bool, typer.Option(help="re-drive with the sensitive-fields setting")] = False,
    wait: Annotated[bool, typer.Option()] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-drive a job's failed rows as a new job linked to it."""
    _run(_retry(ctx.obj, job_id, sensitive, wait, as_json))


async def _retry(target: Target, job_id: str, sensitive: bool, wait: bool, as_json: bool) -> None:
    channel, stub = target.importer()
    try:
        job = await stub.RetryFailedRows(
            pb.RetryFailedRowsRequest(
                job_id=job_id, sensitive_fields_update=sensitive, request_id=str(uuid.uuid4())
            ),
            metadata=target.metadata(),
            timeout=120,
        )
    finally:
        await channel.close()
    if not as_json:
        console.print(f"re-drive job [bold]{job.job_id}[/bold] (parent {job.parent_job_id})")
    if wait:
        await _follow(target, job.job_id, as_json)
    else:
        print_job(job, [], as_json)


@import_app.command("upload")
def upload(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    school: Annotated[str, typer.Option(help="school id")],
    mode: Annotated[Mode, typer.Option(help="manual file (default) or sync")] = Mode.manual,
    sensitive: Annotated[bool, typer.Option(help="allow sensitive-field updates (manual only)")] = False,
    dry_run: Annotated[bool, typer.Option(help="compute outcomes, change nothing")] = False,
    full_roster: FullRosterOption = False,
    file_format: Annotated[Format, typer.Option("--format", help="file format")] = Format.csv,
    source_name: Annotated[str, typer.Option(help="the job's source name (default: FILE's name)")] = "",
    wait: Annotated[bool, typer.Option(help="follow the job until it completes or is held")] = False,
    as_json: JsonOption = False,
) -> None:
    """Upload FILE through the import service (SubmitFile), as staff do."""
    header = upload_header(
        school_id=school,
        manual=mode is Mode.manual,
        sensitive=sensitive,
        dry_run=dry_run,
        full_roster=full_roster,
        oneroster=file_format is Format.oneroster,
        source_name=source_name or file.name,
    )
    _run(_upload(ctx.obj, file, header, wait, as_json))


async def _upload(target: Target, file: Path, header: pb.FileHeader, wait: bool, as_json: bool) -> None:
    size = file.stat().st_size  # noqa: ASYNC240 - one stat before streaming the file
    with Progress(
        TextColumn("[bold]uploading {task.fields[name]}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    ) as bar:
        task = bar.add_task("upload", total=size, name=file.name)
        job = await upload_file(target, file, header, lambda done: bar.update(task, completed=done))
    if not as_json:
        console.print(f"uploaded {size} bytes as job [bold]{job.job_id}[/bold]")
    if wait:
        await _follow(target, job.job_id, as_json)
    else:
        print_job(job, [], as_json)


@import_app.command("hold")
def hold(ctx: typer.Context, job_id: str, as_json: JsonOption = False) -> None:
    """Why a job is held (its figures against the school's threshold) and its preview: every row
    with a field change, old → new, and the students a full roster would archive."""
    _run(_hold(ctx.obj, job_id, as_json))


async def _hold(target: Target, job_id: str, as_json: bool) -> None:
    print_hold(await read_hold(target, job_id, show_progress=not as_json), as_json)


DecisionRequestId = Annotated[
    str,
    typer.Option(
        help="idempotency key: the same one again decides nothing twice (default: a new UUID, printed)"
    ),
]
WaitOption = Annotated[bool, typer.Option(help="follow the job until it ends, then print its counts")]


@import_app.command("release")
def release(
    ctx: typer.Context,
    job_id: str,
    wait: WaitOption = False,
    request_id: DecisionRequestId = "",
    as_json: JsonOption = False,
) -> None:
    """Apply a HELD job: every row is decided afresh against the students as they are now."""
    _decide_job(ctx.obj, Decision.release, job_id, request_id, wait, as_json)


@import_app.command("discard")
def discard(
    ctx: typer.Context, job_id: str, request_id: DecisionRequestId = "", as_json: JsonOption = False
) -> None:
    """End a HELD job with nothing applied (DISCARDED)."""
    _decide_job(ctx.obj, Decision.discard, job_id, request_id, False, as_json)


@import_app.command("undo")
def undo(
    ctx: typer.Context,
    job_id: str,
    wait: WaitOption = False,
    request_id: DecisionRequestId = "",
    as_json: JsonOption = False,
) -> None:
    """Put back what a COMPLETED job did, as a new job: one row per student (UPDATED, DELETED, or
    SKIPPED when the student changed since)."""
    _decide_job(ctx.obj, Decision.undo, job_id, request_id, wait, as_json)


def _decide_job(
    target: Target, decision: Decision, job_id: str, request_id: str, wait: bool, as_json: bool
) -> None:
    if problem := request_id_problem(request_id):
        raise typer.BadParameter(problem, param_hint="--request-id")
    key = request_id_or_new(request_id)

    async def run() -> None:
        job = await decide_job(target, decision, job_id, key)
        extra = {"requestId": key}
        if not as_json:
            console.print(decided_line(decision, job, job_id, key), highlight=False, soft_wrap=True)
        if wait:
            await _follow(target, job.job_id, as_json, extra)
        else:
            print_job(job, [], as_json, extra)

    _run(run())


SchoolOption = Annotated[str, typer.Option(help="the school every student belongs to")]
IdsArgument = Annotated[list[str], typer.Argument(help="student ids (any number)", show_default=False)]
RequestIdOption = Annotated[
    str,
    typer.Option(
        help="base of the per-chunk request ids; run again with the same one to repeat safely "
        "(default: a new UUID, printed)"
    ),
]


@students_app.command("approve")
def approve(
    ctx: typer.Context,
    ids: IdsArgument,
    school: SchoolOption,
    note: Annotated[str, typer.Option(help="kept in each student's audit event")] = "",
    request_id: RequestIdOption = "",
    as_json: JsonOption = False,
) -> None:
    """Approve pending students (500 a call); exit 1 when any id failed."""
    _decide(ctx.obj, True, school, ids, note, request_id, as_json)


@students_app.command("decline")
def decline(
    ctx: typer.Context,
    ids: IdsArgument,
    school: SchoolOption,
    reason: Annotated[str, typer.Option(help="kept in each student's audit event")] = "",
    request_id: RequestIdOption = "",
    as_json: JsonOption = False,
) -> None:
    """Decline pending students (500 a call); exit 1 when any id failed."""
    _decide(ctx.obj, False, school, ids, reason, request_id, as_json)


def _decide(
    target: Target, approve: bool, school: str, ids: list[str], text: str, request_id: str, as_json: bool
) -> None:
    if problem := check_request_id(request_id):
        raise typer.BadParameter(problem, param_hint="--request-id")
    failed: list[bool] = []

    async def run() -> None:
        base, results = await decide(
            target,
            approve=approve,
            school_id=school,
            user_ids=ids,
            text=text,
            request_id=request_id,
            show_progress=not as_json,
        )
        print_decisions(approve, base, results, as_json)
        failed.append(any(not r.ok for r in results))

    _run(run())
    if any(failed):
        raise typer.Exit(1)


@school_app.command("show")
def school_show(ctx: typer.Context, school_id: str, as_json: JsonOption = False) -> None:
    """Show a school's settings."""
    _run(_school_show(ctx.obj, school_id, as_json))


async def _school_show(target: Target, school_id: str, as_json: bool) -> None:
    print_school(await get_school(target, school_id), as_json)


@school_app.command("set")
def school_set(
    ctx: typer.Context,
    school_id: str,
    threshold: Annotated[
        int | None,
        typer.Option(min=0, max=100, metavar="N", help="hold guarded jobs changing more than N % (0: off)"),
    ] = None,
    notify: Annotated[
        str | None, typer.Option(metavar="EMAILS", help="who hears of held jobs: a@x,b@y ('' clears)")
    ] = None,
    domains: Annotated[
        str | None, typer.Option(metavar="DOMAINS", help="email domains: uni.edu,alt.edu (admin)")
    ] = None,
    sso: Annotated[bool | None, typer.Option("--sso/--no-sso", help="single sign-on (admin)")] = None,
    name: Annotated[str | None, typer.Option(help="the school's name (admin)")] = None,
    mute: Annotated[
        str | None,
        typer.Option(
            metavar="KINDS",
            help=f"notification mails switched off, the whole list: {','.join(MUTABLE_KINDS)} ('' : all on)",
        ),
    ] = None,
    request_id: Annotated[str, typer.Option(help="idempotency key (default: a new UUID)")] = "",
    as_json: JsonOption = False,
) -> None:
    """Change the settings given (and only those); print the school."""
    muted = split_list(mute)
    try:
        mute_kinds(muted or [])
    except ValueError as bad:
        raise typer.BadParameter(str(bad), param_hint="--mute") from None
    change = SchoolChange(
        threshold=threshold,
        notify=split_list(notify),
        domains=split_list(domains),
        sso=sso,
        name=name,
        muted=muted,
    )
    request = change.request(school_id, request_id or str(uuid.uuid4()))
    if not request.update_mask.paths:
        raise typer.BadParameter("give at least one setting to change", param_hint="options")
    _run(_school_set(ctx.obj, request, as_json))


async def _school_set(target: Target, request: ipb.UpdateSchoolRequest, as_json: bool) -> None:
    print_school(await update_school(target, request), as_json)


@app.command("demo")
def demo(ctx: typer.Context, rows: Annotated[int, typer.Option(min=10, max=1_000_000)] = 10_000) -> None:
    """Walk the seed story against the running services (make run)."""
    _run(demo_story.run(ctx.obj, rows))


def main() -> None:
    app()
