"""``rollcall students approve|decline`` and ``rollcall school show|set`` (typer CliRunner) against
the identity service running in-process on a real port: chunked bulk decisions with derived request
ids (a re-run decides nothing twice), per-id results and the exit code, school settings through
update_mask, and errors as one line with the gRPC code and the ErrorInfo reason.

The CLI runs its own event loop (``asyncio.run``), so each invocation runs in a thread while the
service keeps serving on the test's loop."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator

import pytest
import structlog
from typer.testing import CliRunner, Result

from identity_service.bootstrap import IdentityApp
from shared.cli import students
from shared.cli.main import app
from tests.integration.identity.identity_support import TOKENS, IdentityClient, unique


@pytest.fixture(autouse=True)
def service_logs_off_stdout() -> Iterator[None]:
    """CliRunner swaps sys.stdout process-wide; the in-process service's log lines (written to
    whatever sys.stdout is) go to the real stderr meanwhile, so stdout is only the CLI's."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))
    try:
        yield
    finally:
        structlog.configure(**saved)


async def _cli(identity_app: IdentityApp, *args: str, token: str = "admin", actor: str = "") -> Result:
    assert identity_app.running is not None
    head = ["--identity", f"127.0.0.1:{identity_app.running.port}", "--token", TOKENS[token]]
    if actor:
        head += ["--actor", actor]
    return await asyncio.to_thread(CliRunner().invoke, app, [*head, *args], env={"COLUMNS": "200"})


async def _statuses(identity: IdentityClient, ids: list[str]) -> dict[str, str]:
    rows = await identity.db.fetch("SELECT id::text, status FROM users WHERE id = ANY($1::uuid[])", ids)
    return {r["id"]: r["status"] for r in rows}


async def test_approve_in_chunks_reports_each_id_and_a_rerun_changes_nothing(
    identity: IdentityClient, identity_app: IdentityApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(students, "CHUNK", 2)  # 5 ids → 3 calls, as 1001 ids would be with 500
    campus = await identity.new_campus()
    pending = [(await identity.sign_up(campus)).id for _ in range(4)]
    missing = str(uuid.uuid4())
    asked = [*pending[:3], missing, pending[3]]
    base = unique("cli-")
    events = await identity.audit_count(school_id=campus.school.id)
    args = ["students", "approve", "--school", campus.school.id, "--request-id", base, "--json", *asked]

    first = await _cli(identity_app, *args, token="platform", actor=campus.staff.id)

    assert first.exit_code == 1, first.output  # one id failed
    payload = json.loads(first.stdout)
    assert (payload["request_id"], payload["approved"], payload["failed"]) == (base, 4, 1)
    assert [r["user_id"] for r in payload["results"]] == asked
    assert [r["reason"] for r in payload["results"]] == ["", "", "", "USER_NOT_FOUND", ""]
    assert {r["status"] for r in payload["results"] if r["ok"]} == {"ACTIVE"}
    assert set((await _statuses(identity, pending)).values()) == {"ACTIVE"}
    assert await identity.audit_count(school_id=campus.school.id) == events + 4
    stored = await identity.db.fetch(
        "SELECT request_id FROM idempotency_answers WHERE request_id LIKE $1 ORDER BY request_id", f"{base}-%"
    )
    assert [r["request_id"] for r in stored] == [f"{base}-0", f"{base}-1", f"{base}-2"]

    again = await _cli(identity_app, *args, token="platform", actor=campus.staff.id)
    assert again.exit_code == 1 and json.loads(again.stdout) == payload
    assert await identity.audit_count(school_id=campus.school.id) == events + 4


async def test_decline_table_summary_and_success_exit(
    identity: IdentityClient, identity_app: IdentityApp
) -> None:
    campus = await identity.new_campus()
    one, two = [(await identity.sign_up(campus)).id for _ in range(2)]
    result = await _cli(
        identity_app, "students", "decline", "--school", campus.school.id, "--reason", "not ours", one, two
    )
    assert result.exit_code == 0, result.output
    assert one in result.stdout and two in result.stdout and "ok" in result.stdout
    assert "2 declined, 0 failed (request id " in result.stdout
    assert set((await _statuses(identity, [one, two])).values()) == {"DECLINED"}


async def test_approve_refused_whole_is_one_line_with_code_and_reason(
    identity: IdentityClient, identity_app: IdentityApp
) -> None:
    campus = await identity.new_campus()
    other = await identity.new_campus()
    student = (await identity.sign_up(campus)).id
    result = await _cli(
        identity_app, "students", "approve", "--school", campus.school.id, student,
        token="platform", actor=other.staff.id,
    )  # fmt: skip
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]  # after the bar
    assert errors == [
        "error PERMISSION_DENIED NOT_STAFF_OF_SCHOOL: the actor is not active staff of this school"
    ]
    assert (await _statuses(identity, [student]))[student] == "PENDING"


async def test_school_set_changes_only_the_given_settings(
    identity: IdentityClient, identity_app: IdentityApp
) -> None:
    school = await identity.new_school()
    domain = school.email_domains[0]
    result = await _cli(
        identity_app, "school", "set", school.id, "--threshold", "25",
        "--notify", f"Office@{domain},dean@{domain}", "--sso", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    changed = json.loads(result.stdout)
    assert changed["changeThresholdPercent"] == 25 and changed["ssoEnabled"] is True
    assert changed["notifyEmails"] == [f"Office@{domain}", f"dean@{domain}"]
    assert changed["emailDomains"] == [domain] and changed["name"] == school.name  # not in the mask

    shown = await _cli(identity_app, "school", "show", school.id)
    assert shown.exit_code == 0, shown.output
    assert "25 %" in shown.stdout and f"Office@{domain}" in shown.stdout and "on" in shown.stdout

    cleared = await _cli(identity_app, "school", "set", school.id, "--notify", "", "--no-sso", "--json")
    assert (
        json.loads(cleared.stdout)["notifyEmails"] == [] and json.loads(cleared.stdout)["ssoEnabled"] is False
    )
    assert json.loads(cleared.stdout)["changeThresholdPercent"] == 25


async def test_school_errors_and_staff_limits(identity: IdentityClient, identity_app: IdentityApp) -> None:
    campus = await identity.new_campus()
    denied = await _cli(
        identity_app, "school", "set", campus.school.id, "--no-sso", token="platform", actor=campus.staff.id
    )
    assert denied.exit_code == 1
    assert denied.stderr.strip().startswith("error PERMISSION_DENIED PERMISSION_DENIED: ")
    staff_may = await _cli(
        identity_app, "school", "set", campus.school.id, "--threshold", "0", "--json",
        token="platform", actor=campus.staff.id,
    )  # fmt: skip
    assert staff_may.exit_code == 0 and json.loads(staff_may.stdout)["changeThresholdPercent"] == 0
    missing = await _cli(identity_app, "school", "show", str(uuid.uuid4()))
    assert missing.exit_code == 1 and missing.stderr.startswith("error NOT_FOUND SCHOOL_NOT_FOUND: ")
    nothing = await _cli(identity_app, "school", "set", campus.school.id)
    assert nothing.exit_code == 2 and "give at least one setting" in nothing.output
