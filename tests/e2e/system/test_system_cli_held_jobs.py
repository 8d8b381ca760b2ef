"""Guarded jobs through the ``rollcall`` command (typer CliRunner) against both services as processes,
the broker and PostgreSQL: staff upload a sensitive fix that would move 3 of their 10 students'
emails — over the school's default threshold of 10 % — so it is HELD; they read why and what it would
change, discard it (nothing changes), upload it again and release it (the emails move), then undo it
(the emails are back)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from shared.cli.main import app
from tests.e2e.system.system_support import Campus, csv_text, email, new_campus
from tests.process_stack import ProcessStack

STUDENTS = 10
MOVED = (2, 5, 7)  # the students whose email the fix moves


async def _cli(campus: Campus, *args: str) -> Result:
    stack = campus.stack
    head = ["--identity", stack.identity_addr, "--import-addr", stack.import_addr]
    head += ["--token", stack.platform_token, "--actor", campus.staff.id]
    return await asyncio.to_thread(CliRunner().invoke, app, [*head, *args], env={"COLUMNS": "200"})


async def _json(campus: Campus, *args: str) -> Any:
    result = await _cli(campus, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def _emails(campus: Campus, ids: dict[str, str]) -> dict[str, str]:
    """Each student's email now, by username (read through identity)."""
    return {username: (await campus.user(user_id)).email for username, user_id in ids.items()}


async def test_a_held_sensitive_file_is_shown_discarded_released_and_undone_from_the_cli(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await new_campus(stack)
    assert campus.school.change_threshold_percent == 10
    rows = [[f"s{n}", email(f"s{n}"), f"First{n}", f"Last{n}", f"sis-{n}"] for n in range(STUDENTS)]
    roster = tmp_path / "roster.csv"
    roster.write_text(csv_text(rows))

    loaded = await _json(campus, "import", "upload", str(roster), "--school", campus.id, "--wait")
    assert (loaded["state"], loaded["counts"]["created"]) == ("IMPORT_JOB_STATE_COMPLETED", str(STUDENTS))
    records = await stack.row_results(loaded["jobId"])
    ids = {r.row.username: r.user_id for r in records}
    before = await _emails(campus, ids)
    assert before == {row[0]: row[1] for row in rows}

    moved = {f"s{n}": email(f"moved{n}") for n in MOVED}
    fix = tmp_path / "fix.csv"
    fix.write_text(csv_text([[r[0], moved.get(r[0], r[1]), *r[2:]] for r in rows]))
    upload = ["import", "upload", str(fix), "--school", campus.id, "--sensitive", "--wait"]

    # 3 of 10 students is 30 % > 10 %: the fix is held, nothing applied
    held = await _json(campus, *upload)
    job_id = held["jobId"]
    assert held["state"] == "IMPORT_JOB_STATE_HELD"
    assert held["hold"] == {
        "sensitiveChanges": "3", "archives": "0", "schoolStudents": str(STUDENTS), "thresholdPercent": 10
    }  # fmt: skip
    shown = await _cli(campus, "import", "status", job_id)
    assert shown.exit_code == 0, shown.output
    assert f"job {job_id} — HELD" in shown.stdout
    assert "held: 3 sensitive changes + 0 archives = 30.0 % of 10 students (threshold 10 %)" in shown.stdout

    preview = await _json(campus, "import", "hold", job_id)
    assert (preview["state"], preview["held"], preview["preview"]) == ("HELD", True, True)
    assert preview["hold"] | {"exceeded": None} == {
        "sensitive_changes": 3, "archives": 0, "school_students": STUDENTS, "threshold_percent": 10,
        "percent": 30.0, "exceeded": None,
    }  # fmt: skip
    assert preview["hold"]["exceeded"] is True
    changes = [(c["user_id"], c["field"], c["old_value"], c["new_value"]) for c in preview["changes"]]
    assert changes == [(ids[u], "email_address", before[u], moved[u]) for u in sorted(moved)]
    assert preview["archives"] == []
    table = await _cli(campus, "import", "hold", job_id)
    assert table.exit_code == 0, table.output
    assert "is HELD" in table.stdout and "rows it would change (3)" in table.stdout
    assert f"{before['s2']} → {moved['s2']}" in table.stdout
    assert await _emails(campus, ids) == before

    # discarded: the emails stay; a discarded job cannot be released
    discarded = await _cli(campus, "import", "discard", job_id)
    assert discarded.exit_code == 0, discarded.output
    assert f"job {job_id} — DISCARDED" in discarded.stdout
    assert (await _json(campus, "import", "status", job_id))["state"] == "IMPORT_JOB_STATE_DISCARDED"
    assert await _emails(campus, ids) == before
    refused = await _cli(campus, "import", "release", job_id)
    assert refused.exit_code == 1
    assert "error FAILED_PRECONDITION JOB_NOT_HELD" in refused.output

    # the same file again, released: the emails move
    again = await _json(campus, *upload)
    assert again["state"] == "IMPORT_JOB_STATE_HELD" and again["jobId"] != job_id
    released = await _json(campus, "import", "release", again["jobId"], "--wait")
    assert released["jobId"] == again["jobId"] and released["state"] == "IMPORT_JOB_STATE_COMPLETED"
    assert (released["counts"]["updated"], released["counts"]["unchanged"]) == ("3", str(STUDENTS - 3))
    assert released["counts"]["fieldChanges"] == {"email_address": "3"}
    assert released["requestId"]
    after = await _emails(campus, ids)
    assert after == before | moved

    # undone: a new job puts the emails back; the same job cannot be undone twice
    undone = await _json(campus, "import", "undo", again["jobId"], "--wait")
    assert undone["jobId"] != again["jobId"] and undone["undoOfJobId"] == again["jobId"]
    assert undone["state"] == "IMPORT_JOB_STATE_COMPLETED"
    counts = undone["counts"]
    assert (counts["updated"], counts["deleted"], counts["skipped"]) == ("3", "0", "0")
    assert await _emails(campus, ids) == before
    twice = await _cli(campus, "import", "undo", again["jobId"])
    assert twice.exit_code == 1 and "JOB_NOT_UNDOABLE" in twice.output
