"""The CLI's job views, without a service: the hold figures and the percent they come to, the notes
under the counts table (held, discarded, released, full roster, undo), the deleted column, and the
full_roster flag ``publish`` puts on every message of a job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from import_service.domain.jobs import Hold, ImportMode, JobSpec
from import_service.domain.rows import FileRow
from shared.amqp.messages import encode_end, encode_rows
from shared.cli import main as cli_main
from shared.cli.changes_view import ChangeLine, print_changes
from shared.cli.jobs_view import hold_dict, hold_exceeded, hold_line, hold_percent, job_notes, print_job
from shared.cli.publishing import job_spec
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

HOLD = pb.JobHold(sensitive_changes=3, archives=0, school_students=10, threshold_percent=10)


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # tables on one line each


def _job(state: int, **fields: Any) -> pb.ImportJob:
    return pb.ImportJob(job_id="j-1", state=state, **fields)  # type: ignore[arg-type]


def test_hold_figures_and_their_percent() -> None:
    assert hold_percent(HOLD) == 30.0
    assert hold_line(HOLD) == "3 sensitive changes + 0 archives = 30.0 % of 10 students (threshold 10 %)"
    one = pb.JobHold(sensitive_changes=1, archives=1, school_students=1, threshold_percent=0)
    assert hold_line(one) == "1 sensitive change + 1 archive = 200.0 % of 1 student (threshold off)"
    assert hold_percent(pb.JobHold()) == 0.0
    assert hold_percent(pb.JobHold(archives=2)) == 100.0  # an empty school: everything is a change
    assert hold_dict(_job(pb.IMPORT_JOB_STATE_COMPLETED)) is None
    assert hold_dict(_job(pb.IMPORT_JOB_STATE_HELD, hold=HOLD)) == {
        "sensitive_changes": 3, "archives": 0, "school_students": 10, "threshold_percent": 10,
        "percent": 30.0, "exceeded": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "archives", "students", "threshold"),
    [
        (3, 0, 10, 10),
        (1, 0, 10, 10),
        (0, 0, 0, 10),
        (2, 1, 7, 0),
        (0, 5, 50, 10),
        (1, 0, 3, 33),
        (0, 1, 3, 34),
    ],
)
def test_exceeded_is_the_services_rule(changes: int, archives: int, students: int, threshold: int) -> None:
    hold = pb.JobHold(
        sensitive_changes=changes, archives=archives, school_students=students, threshold_percent=threshold
    )
    assert hold_exceeded(hold) == Hold(changes, archives, students, threshold).exceeded


def test_notes_say_what_became_of_a_held_job() -> None:
    held = job_notes(_job(pb.IMPORT_JOB_STATE_HELD, sensitive_fields_update=True, hold=HOLD))
    assert held[0] == "job: sensitive fields"
    assert held[1] == "held: 3 sensitive changes + 0 archives = 30.0 % of 10 students (threshold 10 %)"
    assert held[2].startswith("nothing applied yet: `rollcall import hold j-1`")
    discarded = job_notes(_job(pb.IMPORT_JOB_STATE_DISCARDED, hold=HOLD))
    assert discarded == [f"discarded, nothing applied; it was held for {hold_line(HOLD)}"]
    released = job_notes(_job(pb.IMPORT_JOB_STATE_COMPLETED, hold=HOLD))
    assert released == [f"released; it was held for {hold_line(HOLD)}"]
    applying = job_notes(_job(pb.IMPORT_JOB_STATE_RECEIVING, hold=HOLD))
    assert applying == [f"released, applying; it was held for {hold_line(HOLD)}"]
    within = pb.JobHold(sensitive_changes=1, archives=0, school_students=10, threshold_percent=10)
    assert job_notes(_job(pb.IMPORT_JOB_STATE_COMPLETED, hold=within)) == [
        f"guard: {hold_line(within)}, within the threshold"
    ]
    assert job_notes(_job(pb.IMPORT_JOB_STATE_COMPLETED)) == []


def test_notes_name_full_rosters_undos_and_re_drives() -> None:
    roster = job_notes(_job(pb.IMPORT_JOB_STATE_COMPLETED, full_roster=True, dry_run=True))
    assert roster == ["job: full roster (students it does not name are archived), dry run (nothing applied)"]
    counts = pb.ImportCounts(updated=4, deleted=2, skipped=1)
    undo = job_notes(_job(pb.IMPORT_JOB_STATE_COMPLETED, undo_of_job_id="j-0", counts=counts))
    assert undo == ["undo of job j-0: 4 updated, 2 deleted, 1 skipped (changed since)"]
    assert job_notes(_job(pb.IMPORT_JOB_STATE_RECEIVING, parent_job_id="j-0")) == ["re-drive of job j-0"]


def test_the_job_table_counts_archived_and_deleted(capsys: pytest.CaptureFixture[str]) -> None:
    counts = pb.ImportCounts(updated=1, archived=7, deleted=5)
    print_job(_job(pb.IMPORT_JOB_STATE_COMPLETED, counts=counts, rows_received=13), [], False)
    out = capsys.readouterr().out
    assert "job j-1 — COMPLETED" in out and "deleted" in out and "archived" in out
    values = next(line for line in out.splitlines() if "13" in line).replace("│", " ").split()
    assert values == ["13", "0", "1", "0", "0", "0", "0", "7", "5", "0"]


def test_the_job_as_json_has_the_new_fields_and_extra_keys(capsys: pytest.CaptureFixture[str]) -> None:
    job = _job(
        pb.IMPORT_JOB_STATE_HELD, full_roster=True, hold=HOLD, counts=pb.ImportCounts(deleted=2, archived=1)
    )
    print_job(job, [], True, {"requestId": "r-1"})
    payload = json.loads(capsys.readouterr().out)
    assert (payload["state"], payload["fullRoster"], payload["undoOfJobId"]) == (
        "IMPORT_JOB_STATE_HELD",
        True,
        "",
    )
    assert payload["hold"]["sensitiveChanges"] == "3" and payload["counts"]["deleted"] == "2"
    assert payload["requestId"] == "r-1" and payload["failedRows"] == []


def test_changes_of_a_held_job_are_a_preview(capsys: pytest.CaptureFixture[str]) -> None:
    job = _job(pb.IMPORT_JOB_STATE_HELD, hold=HOLD)
    lines = [ChangeLine(1, "UPDATED", "u-1", "email_address", "a@x.edu", "b@x.edu")]
    print_changes(job, lines, True)
    payload = json.loads(capsys.readouterr().out)
    assert payload["state"] == "HELD" and payload["hold"]["percent"] == 30.0
    print_changes(job, lines, False)
    out = capsys.readouterr().out
    assert "changes of job j-1 — HELD" in out and "HELD: the preview of a guarded job, nothing applied" in out
    assert "held: 3 sensitive changes" in out


def test_a_full_roster_spec_puts_the_flag_on_every_message() -> None:
    spec = job_spec(job_id="j", school_id="s", manual=False, full_roster=True, source_name="all.csv")
    assert (spec.full_roster, spec.mode, spec.sensitive_fields_update) == (
        True,
        ImportMode.ONGOING_SYNC,
        False,
    )
    row = FileRow(row_number=1, username="ann", email_address="ann@uni.edu")
    for body in (encode_rows(spec, [row]), encode_end(spec, 1)):
        assert pb.ImportMessage.FromString(body).full_roster
    plain = job_spec(job_id="j", school_id="s", manual=True)
    assert not pb.ImportMessage.FromString(encode_end(plain, 1)).full_roster


def test_publish_full_roster_builds_such_a_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    specs: list[JobSpec] = []

    async def publish(path: Path, spec: JobSpec, **_: object) -> int:
        specs.append(spec)
        return 0

    monkeypatch.setattr(cli_main, "publish_file", publish)
    roster = tmp_path / "all.csv"
    roster.write_text("username,email_address,first_name,last_name\r\n")
    args = ["import", "publish", str(roster), "--school", "s-1", "--mode", "manual", "--json"]
    result = CliRunner().invoke(cli_main.app, [*args, "--full-roster"])
    assert result.exit_code == 0, result.output
    assert (specs[0].full_roster, specs[0].mode, specs[0].school_id) == (True, ImportMode.MANUAL_FILE, "s-1")
    assert CliRunner().invoke(cli_main.app, args).exit_code == 0
    assert not specs[1].full_roster
