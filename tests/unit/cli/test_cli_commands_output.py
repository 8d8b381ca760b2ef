"""Every ``rollcall`` command (typer CliRunner) against stand-in services: what it prints when it
works, and that when it does not, stderr is ONE line ``error <gRPC code> <reason>: <message>``
(``--json``: a JSON object ``{"error": {...}}`` on stderr, stdout empty) with a non-zero exit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.cli.cli_support import (
    FAILED_CSV,
    JOB,
    REDRIVE,
    SCHOOL,
    Served,
    cli,
    closed_port,
    lines,
    serve,
)


@pytest.fixture
def served() -> Iterator[Served]:
    yield from serve()


def _one_error_line(stderr: str) -> str:
    found = lines(stderr)
    assert len(found) == 1, stderr
    assert found[0].startswith("error "), stderr
    return found[0]


# --- success ------------------------------------------------------------------------------------


def test_status_prints_the_counts_and_the_failed_rows(served: Served) -> None:
    result = cli(*served.head(), "import", "status", JOB)
    assert result.exit_code == 0, result.output
    assert f"job {JOB} — COMPLETED" in result.stdout and "EMAIL_TAKEN" in result.stdout
    assert result.stderr == ""
    payload = json.loads(cli(*served.head(), "import", "status", JOB, "--json").stdout)
    assert (payload["jobId"], payload["counts"]["created"], payload["failedRows"][0]["rowNumber"]) == (
        JOB,
        "2",
        "3",
    )


def test_status_wait_follows_the_job_to_its_end(served: Served) -> None:
    result = cli(*served.head(), "import", "status", JOB, "--wait", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "IMPORT_JOB_STATE_COMPLETED"


def test_failed_lists_the_rows_or_writes_them_as_csv(served: Served, tmp_path: Path) -> None:
    listed = cli(*served.head(), "import", "failed", JOB)
    assert listed.exit_code == 0 and "the email is taken" in listed.stdout
    out = tmp_path / "failed.csv"
    written = cli(*served.head(), "import", "failed", JOB, "--csv", str(out))
    assert written.exit_code == 0, written.output
    assert out.read_bytes() == FAILED_CSV
    assert f"wrote {len(FAILED_CSV)} bytes of failed rows to {out}" in written.stderr


def test_retry_prints_the_new_job_and_with_wait_its_counts(served: Served) -> None:
    result = cli(*served.head(), "import", "retry", JOB, "--wait")
    assert result.exit_code == 0, result.output
    assert f"re-drive job {REDRIVE} (parent {JOB})" in result.stderr
    assert f"job {REDRIVE} — COMPLETED" in result.stdout and f"re-drive of job {JOB}" in result.stdout


def test_upload_prints_the_job_and_counts_skipped_oneroster_rows(served: Served, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text(
        "sourcedId,role,status,username,email,givenName,familyName\n"
        "1,student,active,ann,ann@uni.edu,Ann,Lee\n"
        "2,teacher,active,tom,tom@uni.edu,Tom,Ray\n"
        "3,student,inactive,ina,ina@uni.edu,Ina,Ok\n"
    )
    result = cli(*served.head(), "import", "upload", str(users), "--school", SCHOOL, "--format", "oneroster")
    assert result.exit_code == 0, result.output
    assert "uploaded" in result.stderr and "as job job-up" in result.stderr
    assert (
        "skipped 2 OneRoster rows: 1 not a student (teacher 1), 1 student with status inactive"
        in result.stderr
    )
    assert served.importer.uploaded == [users.stat().st_size]
    as_json = cli(
        *served.head(), "import", "upload", str(users), "--school", SCHOOL, "--format", "oneroster", "--json"
    )
    assert json.loads(as_json.stdout)["skippedRows"] == {
        "total": 2, "nonStudents": 1, "byRole": {"teacher": 1}, "byStatus": {"inactive": 1},
    }  # fmt: skip


def test_upload_of_a_csv_skips_nothing_and_says_nothing_of_it(served: Served, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("username,email_address,first_name,last_name\nann,ann@uni.edu,Ann,Lee\n")
    result = cli(*served.head(), "import", "upload", str(roster), "--school", SCHOOL, "--wait", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["jobId"], payload["skippedRows"]["total"]) == ("job-up", 0)
    assert "skipped" not in result.stderr


def test_students_approve_prints_a_table_and_exits_1_when_an_id_failed(served: Served) -> None:
    ok = cli(*served.head(), "students", "approve", "--school", SCHOOL, "u-1", "u-2")
    assert ok.exit_code == 0, ok.output
    assert "2 approved, 0 failed" in ok.stdout
    some = cli(*served.head(), "students", "decline", "--school", SCHOOL, "u-1", "nobody", "--json")
    assert some.exit_code == 1
    payload = json.loads(some.stdout)
    assert (payload["declined"], payload["failed"], payload["results"][1]["reason"]) == (
        1,
        1,
        "USER_NOT_FOUND",
    )


def test_school_show_and_set_print_the_school(served: Served) -> None:
    shown = cli(*served.head(), "school", "show", SCHOOL)
    assert shown.exit_code == 0 and "uni.edu" in shown.stdout
    changed = cli(*served.head(), "school", "set", SCHOOL, "--threshold", "7", "--json")
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["changeThresholdPercent"] == 7


# --- failure: one line, the code and the reason ---------------------------------------------------

REFUSALS = [
    (("import", "status", "nope"), "error NOT_FOUND JOB_NOT_FOUND: import job not found"),
    (("import", "status", "nope", "--wait"), "error NOT_FOUND JOB_NOT_FOUND: import job not found"),
    (("import", "failed", "nope"), "error NOT_FOUND JOB_NOT_FOUND: import job not found"),
    (("import", "changes", "nope"), "error NOT_FOUND JOB_NOT_FOUND: import job not found"),
    (("import", "retry", "nope"), "error NOT_FOUND JOB_NOT_FOUND: import job not found"),
    (("import", "hold", "nope"), "error NOT_FOUND JOB_NOT_FOUND: import job not found"),
    (("import", "release", JOB), "error FAILED_PRECONDITION JOB_NOT_HELD: the job is COMPLETED"),
    (("import", "discard", JOB), "error FAILED_PRECONDITION JOB_NOT_HELD: the job is COMPLETED"),
    (("import", "undo", JOB), "error FAILED_PRECONDITION JOB_NOT_UNDOABLE: the job changed nothing"),
    (
        ("students", "approve", "--school", "nope", "u-1"),
        "error NOT_FOUND SCHOOL_NOT_FOUND: school not found",
    ),
    (
        ("students", "decline", "--school", "nope", "u-1"),
        "error NOT_FOUND SCHOOL_NOT_FOUND: school not found",
    ),
    (("school", "show", "nope"), "error NOT_FOUND SCHOOL_NOT_FOUND: school not found"),
    (("school", "set", "nope", "--threshold", "5"), "error NOT_FOUND SCHOOL_NOT_FOUND: school not found"),
    (("demo",), "error PERMISSION_DENIED PERMISSION_DENIED: only the admin creates schools"),
]


@pytest.mark.parametrize(("args", "line"), REFUSALS, ids=[" ".join(a[:2]) for a, _ in REFUSALS])
def test_a_refusal_is_one_line_with_the_code_and_the_reason(
    served: Served, args: tuple[str, ...], line: str
) -> None:
    result = cli(*served.head(), *args)
    assert result.exit_code == 1, result.output
    assert _one_error_line(result.stderr) == line
    assert result.stdout == "" or args == ("demo",)  # the demo narrates its steps on stdout


WITH_JSON = [(args, line) for args, line in REFUSALS if args != ("demo",)]  # demo prints no JSON


@pytest.mark.parametrize(("args", "line"), WITH_JSON, ids=[" ".join(a[:2]) for a, _ in WITH_JSON])
def test_with_json_a_refusal_is_a_json_object_on_stderr(
    served: Served, args: tuple[str, ...], line: str
) -> None:
    result = cli(*served.head(), *args, "--json")
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    code, reason = line.removeprefix("error ").split(":")[0].split(" ")
    assert (error["code"], error["reason"], error["message"]) == (code, reason, line.split(": ", 1)[1])


def test_the_json_error_keeps_the_error_info_metadata(served: Served) -> None:
    result = cli(*served.head(), "school", "show", "nope", "--json")
    assert json.loads(result.stderr) == {
        "error": {
            "code": "NOT_FOUND",
            "reason": "SCHOOL_NOT_FOUND",
            "message": "school not found",
            "metadata": {"school_id": "nope"},
        }
    }


def test_an_upload_refused_is_one_line(served: Served, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("username,email_address,first_name,last_name\nann,ann@uni.edu,Ann,Lee\n")
    result = cli(*served.head(), "import", "upload", str(roster), "--school", "other")
    assert result.exit_code == 1
    assert _one_error_line(result.stderr) == (
        "error PERMISSION_DENIED NOT_STAFF_OF_SCHOOL: the actor is not staff of the school"
    )


def test_a_service_that_is_not_running_is_named_with_its_address() -> None:
    port = closed_port()
    result = cli("--import-addr", f"127.0.0.1:{port}", "import", "status", JOB)
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert line.startswith(
        "error UNAVAILABLE SERVICE_UNREACHABLE: "
        f"cannot reach the import service at 127.0.0.1:{port} (is it running?): "
    ), line
    identity = cli("--identity", f"127.0.0.1:{port}", "school", "show", SCHOOL, "--json")
    error = json.loads(identity.stderr)["error"]
    assert (error["code"], error["reason"], error["address"]) == (
        "UNAVAILABLE",
        "SERVICE_UNREACHABLE",
        f"127.0.0.1:{port}",
    )
    assert "identity service" in error["message"]


def test_an_unwritable_csv_path_is_one_line(served: Served, tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "failed.csv"
    result = cli(*served.head(), "import", "failed", JOB, "--csv", str(target))
    assert result.exit_code == 1
    assert (
        _one_error_line(result.stderr) == f"error NOT_FOUND LOCAL_FILE: No such file or directory: {target}"
    )
