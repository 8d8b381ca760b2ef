"""``rollcall``: publish student files like an SIS connector, follow jobs, export and re-drive failures,
and decide about guarded jobs (hold, release, discard, undo).

Every command talks to the running services (``make run``) and the broker; ``--json`` prints
machine-readable output for scripts. Whatever goes wrong is ONE line on stderr,
``error <gRPC code> <reason>: <message>`` (with ``--json``, a JSON object), and a non-zero exit
(``failures``): ``Rollcall``, the top-level command, turns every exception into that line — a usage
error and an unexpected exception exit 2, the latter's traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
import uuid
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf import json_format
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperCommand, TyperGroup

from import_service.domain.jobs import JobSpec
from import_service.domain.rows import FileFormat
from shared import event_loop, tracing
from shared.cli import demo as demo_story
from shared.cli.changes_view import job_changes, print_changes
from shared.cli.clients import Target, forget_services, last_service
from shared.cli.failures import (
    ABORTED,
    EXIT_USAGE_OR_BUG,
    USAGE,
    CliError,
    debug_on,
    from_known,
    json_wanted,
    report,
    unexpected,
)
from shared.cli.held_jobs import (
    Decision,
    decide_job,
    decided_line,
    print_hold,
    read_hold,
    request_id_or_new,
    request_id_problem,
)
from shared.cli.jobs_view import bars_off, console, failed_rows, print_failures, print_job, wait_for_job
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
from shared.cli.skipped_rows import SkippedRows
from shared.cli.students import check_request_id, decide, print_decisions
from shared.cli.uploading import upload_file, upload_header
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

try:
    from typer._click.exceptions import ClickException  # typer vendors click since 0.2x
except ImportError:  # pragma: no cover - a typer that depends on click
    from click.exceptions import ClickException  # type: ignore[no-redef]

PROG = "rollcall"  # the usage lines' name, whatever runs it (the script, a test's CliRunner)
LIBRARY_LOGGERS = ("aio_pika", "aiormq", "grpc", "asyncio")
"""Their own warnings (``error when creating transport``, ...) stay off stderr unless ``--debug``:
the one error line says what happened."""


class Rollcall(TyperGroup):
    """The top-level command: whatever goes wrong is one line (``failures.report``) and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        as_json, debug = json_wanted(argv), debug_on(argv)
        _quiet_libraries(debug)
        forget_services()
        try:
            result = super().main(argv, PROG, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except ClickException as problem:
            code = _usage(problem, as_json)
        except typer.Abort:
            report(CliError("CANCELLED", ABORTED, "aborted"), as_json)
            code = 1
        except Exception as error:
            if debug:
                traceback.print_exc(file=sys.stderr)
            known = from_known(error, last_service())
            failure = known if known is not None else unexpected(error, debug)
            report(failure, as_json)
            code = failure.exit_code
        if standalone_mode:
            sys.exit(code)
        return code


class Command(TyperCommand):
    """A command whose help names its arguments as their metavars (``FILE``, ``JOB_ID``), never
    with a type placeholder (``<str>``), in the usage line too."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_argument_name(param))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param, usage=False), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _argument_name(param: Any, usage: bool = True) -> str:
    name = str(param.metavar or (param.name or "").upper())
    if param.nargs != 1:
        name += "..."
    return f"[{name}]" if usage and not param.required else name


def _usage(problem: ClickException, as_json: bool) -> int:
    """A usage error, one line naming the command's help; ``no_args_is_help`` prints the help."""
    if type(problem).__name__ == "NoArgsIsHelpError":
        print(problem.format_message(), file=sys.stderr)
        return problem.exit_code
    ctx = getattr(problem, "ctx", None)
    path = ctx.command_path if ctx is not None else "rollcall"
    message = f"{problem.format_message().rstrip('.')} (see {path} --help)"
    report(CliError("INVALID_ARGUMENT", USAGE, message, exit_code=EXIT_USAGE_OR_BUG), as_json)
    return problem.exit_code if problem.exit_code else EXIT_USAGE_OR_BUG


def _quiet_libraries(debug: bool) -> None:
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        quiet = [h for h in logger.handlers if isinstance(h, logging.NullHandler)]
        if debug:
            for handler in quiet:
                logger.removeHandler(handler)
        elif not quiet:
            logger.addHandler(logging.NullHandler())


def _typer(help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode=None,  # plain help: readable at 80 columns, no boxes
        pretty_exceptions_enable=False,
    )


app = typer.Typer(
    cls=Rollcall,
    help="rollcall — identity and student-import services",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
import_app = _typer("Student-file imports and their jobs")
app.add_typer(import_app, name="import")
students_app = _typer("Pending students: bulk approve and decline")
app.add_typer(students_app, name="students")
school_app = _typer("A school's settings")
app.add_typer(school_app, name="school")


class Mode(StrEnum):
    sync = "sync"
    manual = "manual"


class Format(StrEnum):
    csv = "csv"
    oneroster = "oneroster"


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="print JSON on stdout (an error: a JSON object on stderr)", show_default=False
    ),
]
WaitJobOption = Annotated[
    bool, typer.Option("--wait", help="follow the job until it completes or is held", show_default=False)
]
JobIdArgument = Annotated[
    str, typer.Argument(metavar="JOB_ID", help="the import job's id", show_default=False)
]
FileArgument = Annotated[
    Path,
    typer.Argument(
        exists=True,
        dir_okay=False,
        readable=True,
        metavar="FILE",
        help="a CSV in the upload format, or a OneRoster users.csv (--format oneroster)",
        show_default=False,
    ),
]
ImportSchoolOption = Annotated[
    str, typer.Option(metavar="SCHOOL_ID", help="the school the file is for", show_default=False)
]
SensitiveOption = Annotated[
    bool,
    typer.Option("--sensitive", help="allow sensitive-field updates (manual mode only)", show_default=False),
]
DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="decide every row's outcome, change nothing", show_default=False),
]
FormatOption = Annotated[Format, typer.Option("--format", metavar="FORMAT", help="csv or oneroster")]
FullRosterOption = Annotated[
    bool,
    typer.Option(
        "--full-roster",
        help="FILE is the school's whole student list: students it does not name are archived "
        "(guarded: held when it would change more than the school's threshold)",
        show_default=False,
    ),
]


@app.callback()
def connect(
    ctx: typer.Context,
    identity: Annotated[
        str,
        typer.Option(envvar="ROLLCALL_IDENTITY_ADDR", metavar="HOST:PORT", help="the identity service"),
    ] = "localhost:50051",
    importer: Annotated[
        str,
        typer.Option(
            "--import-addr", envvar="ROLLCALL_IMPORT_ADDR", metavar="HOST:PORT", help="the import service"
        ),
    ] = "localhost:50052",
    amqp_url: Annotated[
        str, typer.Option(envvar="ROLLCALL_AMQP_URL", metavar="URL", help="the broker (import publish)")
    ] = "amqp://guest:guest@localhost:5672/",
    prefix: Annotated[
        str,
        typer.Option(
            envvar="ROLLCALL_AMQP_PREFIX",
            metavar="PREFIX",
            help="publish to the exchange PREFIX.import (checked, never created)",
        ),
    ] = "rollcall",
    token: Annotated[
        str,
        typer.Option(
            envvar="ROLLCALL_CLI_TOKEN",
            metavar="TOKEN",
            help="bearer token (default: the dev admin token)",
            show_default=False,
        ),
    ] = Target.token,
    actor: Annotated[
        str,
        typer.Option(
            envvar="ROLLCALL_CLI_ACTOR",
            metavar="USER_ID",
            help="the staff user acted for",
            show_default=False,
        ),
    ] = "",
    otlp_endpoint: Annotated[
        str,
        typer.Option(
            envvar="ROLLCALL_OTLP_ENDPOINT",
            metavar="URL",
            help="OTLP/gRPC collector for traces (default: off)",
            show_default=False,
        ),
    ] = "",
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="ROLLCALL_CLI_DEBUG",
            help="on an unexpected error, print its traceback too",
            show_default=False,
        ),
    ] = False,
) -> None:
    """Connection options come before the command."""
    ctx.obj = Target(identity, importer, amqp_url, prefix, token, actor)
    tracing.configure(otlp_endpoint or None, tracing.SERVICE_CLI, sql=False)  # spans flushed at exit


def _run(coro: object) -> None:
    """Runs a command's coroutine; what it raises becomes one line in ``Rollcall.main``."""
    event_loop.run(coro)  # type: ignore[arg-type]


@import_app.command(
    "publish", cls=Command, short_help="Publish a file to the import exchange, as a connector does"
)
def publish(
    ctx: typer.Context,
    file: FileArgument,
    school: ImportSchoolOption,
    mode: Annotated[
        Mode, typer.Option(metavar="MODE", help="sync (an SIS's ongoing sync) or manual (a staff file)")
    ] = Mode.sync,
    sensitive: SensitiveOption = False,
    dry_run: DryRunOption = False,
    full_roster: FullRosterOption = False,
    file_format: FormatOption = Format.csv,
    rows_per_message: Annotated[
        int, typer.Option(min=1, max=1000, metavar="N", help="rows in each message")
    ] = 100,
    job_id: Annotated[
        str,
        typer.Option(
            metavar="JOB_ID",
            help="the job's id; the same again adds to that job (default: a new UUID)",
            show_default=False,
        ),
    ] = "",
    wait: WaitJobOption = False,
    school_check: Annotated[
        bool,
        typer.Option(
            "--no-school-check",
            help="do not ask the identity service whether the school exists (a connector host "
            "that cannot reach it)",
            show_default=False,
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Publish FILE's rows to the import exchange as an SIS connector does.

    First checks that the school exists (GetSchool) and that the exchange PREFIX.import does
    (never creating it): either missing, nothing is published. OneRoster rows that are not
    imported (not students, other statuses) are counted and the count printed."""
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
    _run(_publish(target, file, spec, fmt, rows_per_message, wait, as_json, not school_check))


async def _publish(
    target: Target,
    file: Path,
    spec: JobSpec,
    fmt: FileFormat,
    per_message: int,
    wait: bool,
    as_json: bool,
    check_school: bool = True,
) -> None:
    size = file.stat().st_size  # noqa: ASYNC240 - one stat before streaming the file
    skipped = SkippedRows()

    async def school_exists() -> None:
        await get_school(target, spec.school_id)  # SCHOOL_NOT_FOUND: nothing is published

    with Progress(
        TextColumn("[bold]publishing {task.fields[name]}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=console,
        disable=bars_off(not as_json),
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
            preflight=school_exists if check_school else None,
            skipped=skipped,
        )
    extra = {"rowsPublished": total, "skippedRows": skipped.as_dict()}
    if not as_json:
        console.print(f"published {total} rows as job [bold]{spec.job_id}[/bold]")
        _print_skipped(skipped)
    if wait:
        await _follow(target, spec.job_id, as_json, extra)
    elif as_json:
        print(json.dumps({"jobId": spec.job_id, **extra}, indent=2))


def _print_skipped(skipped: SkippedRows) -> None:
    if (line := skipped.line()) is not None:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


async def _follow(target: Target, job_id: str, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """Follow the job until it ends (COMPLETED, DISCARDED or HELD), then print it."""
    job = await wait_for_job(target, job_id, show_progress=not as_json)
    print_job(job, await failed_rows(target, job_id, 10), as_json, extra)


@import_app.command("status", cls=Command, short_help="A job's state and counts (--wait: follow it)")
def status(
    ctx: typer.Context, job_id: JobIdArgument, wait: WaitJobOption = False, as_json: JsonOption = False
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


@import_app.command("failed", cls=Command, short_help="A job's failed rows, or export them (--csv)")
def failed(
    ctx: typer.Context,
    job_id: JobIdArgument,
    output: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="FILE",
            help="write every failed row to FILE, in the upload format",
            dir_okay=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, metavar="N", help="list at most N rows")] = 50,
    as_json: JsonOption = False,
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


@import_app.command("changes", cls=Command, short_help="Every field a job's rows changed, old → new")
def changes(ctx: typer.Context, job_id: JobIdArgument, as_json: JsonOption = False) -> None:
    """List every field a job's rows changed (a dry run's: would change), old → new, by row."""
    _run(_changes(ctx.obj, job_id, as_json))


async def _changes(target: Target, job_id: str, as_json: bool) -> None:
    job, lines = await job_changes(target, job_id)
    print_changes(job, lines, as_json)


@import_app.command("retry", cls=Command, short_help="Re-drive a job's failed rows as a new job")
def retry(
    ctx: typer.Context,
    job_id: JobIdArgument,
    sensitive: Annotated[
        bool,
        typer.Option(
            "--sensitive",
            help="re-drive with sensitive-field updates (approves pending students)",
            show_default=False,
        ),
    ] = False,
    wait: WaitJobOption = False,
    as_json: JsonOption = False,
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


@import_app.command("upload", cls=Command, short_help="Upload a file through SubmitFile, as staff do")
def upload(
    ctx: typer.Context,
    file: FileArgument,
    school: ImportSchoolOption,
    mode: Annotated[
        Mode, typer.Option(metavar="MODE", help="manual (a staff file) or sync (an SIS's ongoing sync)")
    ] = Mode.manual,
    sensitive: SensitiveOption = False,
    dry_run: DryRunOption = False,
    full_roster: FullRosterOption = False,
    file_format: FormatOption = Format.csv,
    source_name: Annotated[
        str,
        typer.Option(metavar="NAME", help="the job's source name (default: FILE's name)", show_default=False),
    ] = "",
    wait: WaitJobOption = False,
    as_json: JsonOption = False,
) -> None:
    """Upload FILE through the import service (SubmitFile), as staff do, with a progress bar.

    Needs a staff --actor (or the admin token). OneRoster rows the service does not import (not
    students, other statuses) are counted and the count printed."""
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
    skipped = SkippedRows()
    with Progress(
        TextColumn("[bold]uploading {task.fields[name]}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=bars_off(not as_json),
    ) as bar:
        task = bar.add_task("upload", total=size, name=file.name)
        job = await upload_file(target, file, header, lambda done: bar.update(task, completed=done), skipped)
    extra = {"skippedRows": skipped.as_dict()}
    if not as_json:
        console.print(f"uploaded {size} bytes as job [bold]{job.job_id}[/bold]")
        _print_skipped(skipped)
    if wait:
        await _follow(target, job.job_id, as_json, extra)
    else:
        print_job(job, [], as_json, extra)


@import_app.command("hold", cls=Command, short_help="Why a job is held, and what it would change")
def hold(ctx: typer.Context, job_id: JobIdArgument, as_json: JsonOption = False) -> None:
    """Why a job is held (its figures against the school's threshold) and its preview: every row
    with a field change, old → new, and the students a full roster would archive."""
    _run(_hold(ctx.obj, job_id, as_json))


async def _hold(target: Target, job_id: str, as_json: bool) -> None:
    print_hold(await read_hold(target, job_id, show_progress=not as_json), as_json)


DecisionRequestId = Annotated[
    str,
    typer.Option(
        metavar="KEY",
        help="idempotency key: the same one again decides nothing twice (default: a new UUID, printed)",
        show_default=False,
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option("--wait", help="follow the job until it ends, then print its counts", show_default=False),
]


@import_app.command("release", cls=Command, short_help="Apply a HELD job")
def release(
    ctx: typer.Context,
    job_id: JobIdArgument,
    wait: WaitOption = False,
    request_id: DecisionRequestId = "",
    as_json: JsonOption = False,
) -> None:
    """Apply a HELD job: every row is decided afresh against the students as they are now."""
    _decide_job(ctx.obj, Decision.release, job_id, request_id, wait, as_json)


@import_app.command("discard", cls=Command, short_help="End a HELD job, nothing applied")
def discard(
    ctx: typer.Context, job_id: JobIdArgument, request_id: DecisionRequestId = "", as_json: JsonOption = False
) -> None:
    """End a HELD job with nothing applied (DISCARDED)."""
    _decide_job(ctx.obj, Decision.discard, job_id, request_id, False, as_json)


@import_app.command("undo", cls=Command, short_help="Put back what a COMPLETED job did, as a new job")
def undo(
    ctx: typer.Context,
    job_id: JobIdArgument,
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


SchoolOption = Annotated[
    str, typer.Option(metavar="SCHOOL_ID", help="the school every student belongs to", show_default=False)
]
IdsArgument = Annotated[
    list[str], typer.Argument(metavar="USER_ID", help="student ids (any number)", show_default=False)
]
RequestIdOption = Annotated[
    str,
    typer.Option(
        metavar="KEY",
        help="base of the per-chunk request ids; run again with the same one to repeat safely "
        "(default: a new UUID, printed)",
        show_default=False,
    ),
]


@students_app.command("approve", cls=Command, short_help="Approve pending students, any number of them")
def approve(
    ctx: typer.Context,
    ids: IdsArgument,
    school: SchoolOption,
    note: Annotated[
        str, typer.Option(metavar="TEXT", help="kept in each student's audit event", show_default=False)
    ] = "",
    request_id: RequestIdOption = "",
    as_json: JsonOption = False,
) -> None:
    """Approve pending students (500 a call); exit 1 when any id failed."""
    _decide(ctx.obj, True, school, ids, note, request_id, as_json)


@students_app.command("decline", cls=Command, short_help="Decline pending students, any number of them")
def decline(
    ctx: typer.Context,
    ids: IdsArgument,
    school: SchoolOption,
    reason: Annotated[
        str, typer.Option(metavar="TEXT", help="kept in each student's audit event", show_default=False)
    ] = "",
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


SchoolIdArgument = Annotated[
    str, typer.Argument(metavar="SCHOOL_ID", help="the school's id", show_default=False)
]


@school_app.command("show", cls=Command, short_help="Show a school's settings")
def school_show(ctx: typer.Context, school_id: SchoolIdArgument, as_json: JsonOption = False) -> None:
    """Show a school's settings."""
    _run(_school_show(ctx.obj, school_id, as_json))


async def _school_show(target: Target, school_id: str, as_json: bool) -> None:
    print_school(await get_school(target, school_id), as_json)


@school_app.command("set", cls=Command, short_help="Change the settings given, and only those")
def school_set(
    ctx: typer.Context,
    school_id: SchoolIdArgument,
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
    name: Annotated[str | None, typer.Option(metavar="NAME", help="the school's name (admin)")] = None,
    mute: Annotated[
        str | None,
        typer.Option(
            metavar="KINDS",
            help="notification mails switched off, the whole list, of: "
            f"{', '.join(MUTABLE_KINDS)} ('': all on)",
        ),
    ] = None,
    request_id: Annotated[
        str, typer.Option(metavar="KEY", help="idempotency key (default: a new UUID)", show_default=False)
    ] = "",
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


@app.command("demo", cls=Command, short_help="Walk the seed story against `make run`")
def demo(
    ctx: typer.Context,
    rows: Annotated[
        int, typer.Option(min=10, max=1_000_000, metavar="N", help="rows in the SIS file it publishes")
    ] = 10_000,
) -> None:
    """Walk the seed story against the running services (make run)."""
    _run(demo_story.run(ctx.obj, rows))


def main() -> None:
    """The ``rollcall`` command: every failure one line (``Rollcall.main``), never a traceback
    unless ``--debug`` or ``ROLLCALL_CLI_DEBUG=1``."""
    try:
        app()
    except SystemExit:
        raise
    except BaseException as error:  # the last guard: nothing escapes as a traceback
        if isinstance(error, KeyboardInterrupt):
            sys.exit(130)
        debug = debug_on(sys.argv[1:])
        if debug:
            traceback.print_exc(file=sys.stderr)
        failure = unexpected(error, debug)
        report(failure, json_wanted(sys.argv[1:]))
        sys.exit(failure.exit_code)
