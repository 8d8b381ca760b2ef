"""The ``rollcall`` command (typer CliRunner) against both services as processes, the broker and
PostgreSQL, as a careers office uses it at term start: staff upload the SIS file through the import
service, then approve the students who signed up themselves in one command — with a typo'd id among
them — and run the same command again without deciding anyone twice; then tighten the import guard."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from typer.testing import CliRunner, Result

from shared.cli.main import app
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.e2e.system.system_support import Campus, csv_text, email, new_campus
from tests.process_stack import ProcessStack


async def _cli(campus: Campus, *args: str) -> Result:
    stack = campus.stack
    head = ["--identity", stack.identity_addr, "--import-addr", stack.import_addr]
    head += ["--token", stack.platform_token, "--actor", campus.staff.id]
    return await asyncio.to_thread(CliRunner().invoke, app, [*head, *args], env={"COLUMNS": "200"})


async def test_staff_upload_then_bulk_approve_from_the_cli(stack: ProcessStack, tmp_path: Path) -> None:
    campus = await new_campus(stack)
    roster = tmp_path / "fall.csv"
    roster.write_text(
        csv_text([("alee", email("ann"), "Ann", "Lee", "sis-1"), ("bkim", email("bo"), "Bo", "Kim", "sis-2")])
    )

    uploaded = await _cli(campus, "import", "upload", str(roster), "--school", campus.id, "--wait", "--json")

    assert uploaded.exit_code == 0, uploaded.output
    job = json.loads(uploaded.stdout)
    assert (job["state"], job["sourceName"], job["counts"]["created"]) == (
        "IMPORT_JOB_STATE_COMPLETED",
        "fall.csv",
        "2",
    )
    usernames = {u.username for u in await campus.users() if u.user_type == res.USER_TYPE_STUDENT}
    assert {"alee", "bkim"} <= usernames

    pending = [(await campus.sign_up(email(f"self{n}"))).id for n in range(3)]
    typo = str(uuid.uuid4())
    key = f"term-start-{uuid.uuid4().hex[:8]}"
    args = ["students", "approve", "--school", campus.id, "--note", "term start", "--request-id", key]

    first = await _cli(campus, *args, "--json", *pending, typo)

    assert first.exit_code == 1, first.output  # the typo failed
    payload = json.loads(first.stdout)
    assert (payload["approved"], payload["failed"]) == (3, 1)
    assert payload["results"][3] | {"message": ""} == {
        "user_id": typo, "ok": False, "status": "", "reason": "USER_NOT_FOUND", "message": ""
    }  # fmt: skip
    for user_id in pending:
        assert (await campus.user(user_id)).status == res.USER_STATUS_ACTIVE
    approvals = [e for e in await campus.audit_events() if e.action == "user.approved"]
    assert sorted(e.user_id for e in approvals) == sorted(pending)

    again = await _cli(campus, *args, *pending, typo)
    assert again.exit_code == 1 and "3 approved, 1 failed" in again.stdout
    assert len([e for e in await campus.audit_events() if e.action == "user.approved"]) == 3

    guarded = await _cli(campus, "school", "set", campus.id, "--threshold", "5", "--json")
    assert guarded.exit_code == 0, guarded.output
    assert json.loads(guarded.stdout)["changeThresholdPercent"] == 5
