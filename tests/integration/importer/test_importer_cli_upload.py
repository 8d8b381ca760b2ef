"""``rollcall import upload FILE`` (typer CliRunner) against the import service running in-process on
a real port (real PostgreSQL and RabbitMQ, identity faked): the file goes through SubmitFile in
chunks, the job is printed (``--json``; with ``--wait``, followed until it completes), and a
refusal is one line with the gRPC code and the ErrorInfo reason. The CLI runs its own event loop,
so each invocation runs in a thread while the service keeps serving on the test's loop."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner, Result

from import_service.bootstrap import ImportApp
from shared.cli import uploading
from shared.cli.main import app
from tests.integration.importer.importer_support import PLATFORM_TOKEN, FakeIdentity, unique


@pytest.fixture(autouse=True)
def service_logs_off_stdout() -> Iterator[None]:
    """CliRunner swaps sys.stdout process-wide: the service's log lines go to the real stderr."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))
    try:
        yield
    finally:
        structlog.configure(**saved)


async def _cli(import_app: ImportApp, actor: str, *args: str) -> Result:
    assert import_app.running is not None
    head = ["--import-addr", f"127.0.0.1:{import_app.running.port}", "--token", PLATFORM_TOKEN]
    head += ["--actor", actor]
    return await asyncio.to_thread(CliRunner().invoke, app, [*head, *args], env={"COLUMNS": "200"})


def _roster(tmp_path: Path, school: str, count: int) -> Path:
    lines = ["email_address,username,first_name,last_name"]
    lines += [f"s{n}@uni.example,{school}-s{n},Ann,Lee" for n in range(count)]
    path = tmp_path / "roster.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_upload_streams_the_file_and_follows_the_job(
    import_app: ImportApp, fake_identity: FakeIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploading, "CHUNK_BYTES", 1000)  # several chunks for a small file
    school = unique("school")
    staff = fake_identity.add_staff(school)
    path = _roster(tmp_path, school, 300)
    assert path.stat().st_size > 5000

    result = await _cli(
        import_app, staff, "import", "upload", str(path), "--school", school,
        "--source-name", "term roster", "--wait", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert (job["schoolId"], job["sourceName"], job["mode"]) == (
        school,
        "term roster",
        "IMPORT_MODE_MANUAL_FILE",
    )
    assert (job["state"], job["totalRows"], job["counts"]["created"]) == (
        "IMPORT_JOB_STATE_COMPLETED",
        "300",
        "300",
    )
    assert job["failedRows"] == []


async def test_upload_prints_the_job_table_without_waiting(
    import_app: ImportApp, fake_identity: FakeIdentity, tmp_path: Path
) -> None:
    school = unique("school")
    staff = fake_identity.add_staff(school)
    path = _roster(tmp_path, school, 3)
    result = await _cli(import_app, staff, "import", "upload", str(path), "--school", school, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "uploaded" in result.stderr and "as job" in result.stderr
    assert "RECEIVING" in result.stdout or "COMPLETED" in result.stdout


async def test_upload_refused_is_one_line_with_code_and_reason(
    import_app: ImportApp, fake_identity: FakeIdentity, tmp_path: Path
) -> None:
    school = unique("school")
    stranger = fake_identity.add_staff(unique("other"))
    path = _roster(tmp_path, school, 3)
    result = await _cli(import_app, stranger, "import", "upload", str(path), "--school", school)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error PERMISSION_DENIED NOT_STAFF_OF_SCHOOL: "), errors

    sync_sensitive = await _cli(
        import_app, fake_identity.add_staff(school), "import", "upload", str(path), "--school", school,
        "--mode", "sync", "--sensitive",
    )  # fmt: skip
    assert sync_sensitive.exit_code == 1
    assert [line for line in sync_sensitive.stderr.splitlines() if line.startswith("error INVALID_ARGUMENT")]
