"""Every row of the decision table (product.md, "Import rules") through ONE published CSV file, and
the same file as a dry run: identity and import as processes, a real broker, real PostgreSQL.

The students are set up through IdentityService the way they come to exist in production (staff
load them, students sign up on the web), the file is published to the exchange exactly as the
connector CLI publishes it, and the outcomes are read back with ListRowResults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from tests.e2e.system.system_support import (
    SENSITIVE_MESSAGE,
    Campus,
    csv_text,
    email,
    essence,
    new_campus,
    outcome_name,
    publish_csv,
    spec_for,
)
from tests.process_stack import ProcessStack, job_counts


@dataclass
class Scenario:
    campus: Campus
    text: str
    rows: int
    users: dict[str, res.User]  # the people set up before the file, by role in the table
    expected: dict[int, tuple[str, str]]  # row -> (outcome, reason)


async def decision_table_scenario(stack: ProcessStack) -> Scenario:
    campus = await new_campus(stack)
    other = await new_campus(stack, "Other College")
    pending_address = email("pending", "gmail.com")
    self_registered = email("selfreg", "gmail.com")
    users = {
        "pending": await campus.sign_up(pending_address, "Penny", "Pending"),
        "active": await campus.student("alee", email("ann.lee"), "Ann", "Lee"),
        "renamed": await campus.student("bcho", email("bo.cho"), "Bo", "Cho"),
        "conflict": await campus.student("cdiaz", email("cy.diaz"), "Cy", "Diaz"),
        "locked": await campus.student("dlock", email("dee.lock"), "Dee", "Lock"),
        "self": await campus.sign_up(self_registered, "Sam", "Self"),
        "auth": await campus.student("eauth", email("eve.auth"), "Eve", "Auth", auth="AUTH-1"),
        "elsewhere": await other.student("fother", email("fay.other"), "Fay", "Other"),
    }
    await campus.set_file_updates(users["locked"].id, enabled=False)
    new_address = email("new.student")
    rows = [
        ["nnew", new_address, "Nia", "New", "N-1"],  # 4: neither exists
        [pending_address, pending_address, "Penny", "Pending", ""],  # 6: username = email, PENDING
        ["alee", users["active"].email, "Ann", "Lee", ""],  # 6: nothing changes
        ["bcho", users["renamed"].email, "Bo", "Cho-Smith", ""],  # 6: an ordinary field changes
        ["staffer", campus.staff.email, "St", "Aff", ""],  # 2: the address is a staff user's
        ["fay", users["elsewhere"].email, "Fay", "Other", ""],  # 2: a student of another school
        ["alee", users["conflict"].email, "Ann", "Lee", ""],  # 3: U and E are two students
        ["dlock", users["locked"].email, "Dee", "Changed", ""],  # 5: file updates disabled
        ["sself", self_registered, "Sam", "Self", ""],  # 8: only E exists, no sensitive setting
        ["eauth", users["auth"].email, "Eve", "Auth", "AUTH-2"],  # 9: auth identifier differs
        ["", email("nouser"), "No", "Username", ""],  # 1: no username
        ["bademail", "not-an-email", "Bad", "Email", ""],  # 1: malformed email
        ["longname", email("long"), "X" * 101, "Long", ""],  # 1: over-long field
        ["ctrl", email("ctrl"), "Ctrl", "Bell\x07Char", ""],  # 1: control character
        ["noemail", "", "No", "Email", ""],  # 1: no email
    ]
    expected = {
        1: ("CREATED", ""),
        2: ("UPDATED", ""),
        3: ("UNCHANGED", ""),
        4: ("UPDATED", ""),
        5: ("FAILED", "EMAIL_TAKEN"),
        6: ("FAILED", "EMAIL_TAKEN"),
        7: ("FAILED", "IDENTITY_CONFLICT"),
        8: ("SKIPPED", "FILE_UPDATES_DISABLED"),
        9: ("FAILED", "SENSITIVE_FIELDS_REQUIRED"),
        10: ("FAILED", "SENSITIVE_FIELDS_REQUIRED"),
        11: ("FAILED", "INVALID_ROW"),
        12: ("FAILED", "INVALID_ROW"),
        13: ("FAILED", "INVALID_ROW"),
        14: ("FAILED", "INVALID_ROW"),
        15: ("FAILED", "INVALID_ROW"),
    }
    return Scenario(campus, csv_text(rows), len(rows), users, expected)


async def test_every_row_of_the_decision_table_through_one_published_file(
    stack: ProcessStack, tmp_path: Path
) -> None:
    scene = await decision_table_scenario(stack)
    campus, users = scene.campus, scene.users
    spec = spec_for(campus.id)
    assert await publish_csv(stack, tmp_path, scene.text, spec, rows_per_message=3) == scene.rows

    job = await stack.wait_job(spec.job_id)
    records = {r.row_number: r for r in await stack.row_results(spec.job_id)}

    assert sorted(records) == list(range(1, scene.rows + 1))
    got = {n: (outcome_name(r.outcome), r.reason) for n, r in records.items()}
    assert got == scene.expected
    assert records[2].approved and not any(r.approved for n, r in records.items() if n != 2)
    assert records[9].message == SENSITIVE_MESSAGE
    assert records[10].message.startswith(SENSITIVE_MESSAGE)
    named = {11: "username", 12: "email_address", 13: "first_name", 14: "last_name", 15: "email_address"}
    for row, field in named.items():
        assert field in records[row].message, (row, records[row].message)
    assert records[11].row.email_address and records[14].row.last_name == "Bell\x07Char"  # kept as sent
    assert (job.total_rows, job.rows_received) == (scene.rows, scene.rows)
    assert job_counts(job) == {
        "created": 1,
        "updated": 2,
        "unchanged": 1,
        "skipped": 1,
        "failed": 10,
        "approved": 1,
    }

    created = await campus.user(records[1].user_id)
    assert (created.username, created.status, created.origin) == (
        "nnew",
        res.USER_STATUS_ACTIVE,
        res.USER_ORIGIN_STUDENT_FILE,
    )
    assert (created.first_name, created.auth_identifier) == ("Nia", "N-1")
    approved = await campus.user(users["pending"].id)
    assert approved.status == res.USER_STATUS_ACTIVE and records[2].user_id == approved.id
    assert (await campus.user(users["renamed"].id)).last_name == "Cho-Smith"
    assert (await campus.user(users["locked"].id)).last_name == "Lock"
    still_pending = await campus.user(users["self"].id)
    assert (still_pending.status, still_pending.username) == (res.USER_STATUS_PENDING, users["self"].email)
    assert (await campus.user(users["auth"].id)).auth_identifier == "AUTH-1"
    assert (await campus.user(users["elsewhere"].id)).username == "fother"
    assert (await campus.user(campus.staff.id)).first_name == "Casey"
    assert await campus.pending_ids() == {users["self"].id}


async def test_a_dry_run_reports_what_a_real_run_does_and_changes_nothing(
    stack: ProcessStack, tmp_path: Path
) -> None:
    scene = await decision_table_scenario(stack)
    campus = scene.campus
    before_users, before_audit = await campus.users(), await campus.audit_events()

    dry = spec_for(campus.id, dry_run=True, source="dry run of the nightly feed")
    await publish_csv(stack, tmp_path, scene.text, dry, rows_per_message=5)
    dry_job = await stack.wait_job(dry.job_id)
    dry_rows = await stack.row_results(dry.job_id)

    assert dry_job.dry_run
    assert await campus.users() == before_users  # same users, same fields, same etags
    assert len(await campus.audit_events()) == len(before_audit)
    assert await campus.pending_ids() == {scene.users["pending"].id, scene.users["self"].id}

    real = spec_for(campus.id)
    await publish_csv(stack, tmp_path, scene.text, real, rows_per_message=5)
    real_job = await stack.wait_job(real.job_id)
    real_rows = await stack.row_results(real.job_id)

    assert [essence(r) for r in dry_rows] == [essence(r) for r in real_rows]
    assert {r.row_number: (outcome_name(r.outcome), r.reason) for r in real_rows} == scene.expected
    assert [r.message for r in dry_rows] == [r.message for r in real_rows]
    existing = [
        (a.user_id, b.user_id)
        for a, b in zip(dry_rows, real_rows, strict=True)
        if a.outcome != rows_pb.ROW_OUTCOME_CREATED
    ]
    assert all(a == b for a, b in existing)  # the same students named, except the one to create
    assert job_counts(dry_job) == job_counts(real_job)
    assert await campus.users() != before_users
