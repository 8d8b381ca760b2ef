"""Field-level changes through both services and the broker (issue 9): a careers office reads, row by
row, what a file changed (old → new), and the job counts how many rows changed each field.

A nightly sync updates names, approves a pending sign-up and creates a student; then staff's
sensitive manual file renames usernames and moves emails, first as a dry run (the preview lists the
same changes, nothing applied) and then for real. ListRowResults shows every change with its old and
new values; the job's ``counts.field_changes`` match them.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from import_service.domain.jobs import ImportMode
from shared.cli.main import app
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import csv_text, email, new_campus, outcome_name, publish_csv, spec_for
from tests.process_stack import ProcessStack

Change = tuple[str, str, str]


def changes_by_row(records: list[pb.RowRecord]) -> dict[int, list[Change]]:
    return {r.row_number: [(c.field, c.old_value, c.new_value) for c in r.changes] for r in records}


def field_counts(changes: dict[int, list[Change]]) -> dict[str, int]:
    return dict(Counter(field for row in changes.values() for field, _, _ in row))


async def test_a_sync_and_a_sensitive_file_show_every_change_old_and_new(
    stack: ProcessStack, tmp_path: Path
) -> None:
    campus = await new_campus(stack)
    ann = await campus.student("alee", email("ann.lee"), "Ann", "Lee")
    bo = await campus.student("bcho", email("bo.cho"), "Bo", "Cho")
    dee = await campus.student("dmay", email("dee.may"), "Dee", "May")
    pending_address = email("penny", "gmail.com")
    penny = await campus.sign_up(pending_address, "Penny", "Pending")
    new_address = email("nia.new")

    sync = spec_for(campus.id)
    sync_rows = [
        ["alee", ann.email, "Annie", "Lee", ""],  # first name changes
        ["bcho", bo.email, "Bo", "Cho-Smith", ""],  # last name changes
        [pending_address, pending_address, "Penny", "Pending", ""],  # approved
        ["nnew", new_address, "Nia", "New", "N-1"],  # created
        ["dmay", dee.email, "Dee", "May", ""],  # unchanged
        ["alee2", bo.email, "Bo", "Cho", ""],  # a sync may not rename: FAILED, no changes
    ]
    await publish_csv(stack, tmp_path, csv_text(sync_rows), sync)
    sync_job = await stack.wait_job(sync.job_id)
    sync_records = await stack.row_results(sync.job_id)
    sync_changes = changes_by_row(sync_records)
    assert [outcome_name(r.outcome) for r in sync_records] == [
        "UPDATED",
        "UPDATED",
        "UPDATED",
        "CREATED",
        "UNCHANGED",
        "FAILED",
    ]
    assert sync_changes == {
        1: [("first_name", "Ann", "Annie")],
        2: [("last_name", "Cho", "Cho-Smith")],
        3: [("status", "PENDING", "ACTIVE")],
        4: [
            ("username", "", "nnew"),
            ("email_address", "", new_address),
            ("first_name", "", "Nia"),
            ("last_name", "", "New"),
            ("auth_identifier", "", "N-1"),
            ("status", "", "ACTIVE"),
        ],
        5: [],
        6: [],
    }
    assert sync_records[2].user_id == penny.id
    assert dict(sync_job.counts.field_changes) == field_counts(sync_changes)
    assert dict(sync_job.counts.field_changes) == {
        "first_name": 2,
        "last_name": 2,
        "status": 2,
        "username": 1,
        "email_address": 1,
        "auth_identifier": 1,
    }

    moved_bo, moved_dee = email("bo.cho-smith"), email("dee.may2")
    manual_rows = [
        ["ann.lee", ann.email, "Annie", "Lee", ""],  # username alee → ann.lee
        ["bcho", moved_bo, "Bo", "Cho-Smith", ""],  # email moves
        ["dee.may", moved_dee, "Dee", "May", ""],  # neither matches: a new student
        ["dmay", dee.email, "Deanna", "", "D-9"],  # first name and auth identifier
    ]
    preview = spec_for(campus.id, mode=ImportMode.MANUAL_FILE, sensitive=True, dry_run=True, source="fix.csv")
    await publish_csv(stack, tmp_path, csv_text(manual_rows), preview)
    preview_job = await stack.wait_job(preview.job_id)
    preview_changes = changes_by_row(await stack.row_results(preview.job_id))
    assert (await campus.user(ann.id)).username == "alee"  # a dry run changes nothing

    manual = spec_for(campus.id, mode=ImportMode.MANUAL_FILE, sensitive=True, source="fix.csv")
    await publish_csv(stack, tmp_path, csv_text(manual_rows), manual)
    held = await stack.wait_job(manual.job_id, until=lambda job: job.state == pb.IMPORT_JOB_STATE_HELD)
    assert held.hold.sensitive_changes == 2, "ann's username and bo's email (dmay's blank auth id is filled)"
    await stack.importer.ReleaseImportJob(
        pb.ReleaseImportJobRequest(job_id=manual.job_id), metadata=campus.staff_md
    )
    manual_job = await stack.wait_job(manual.job_id)
    manual_changes = changes_by_row(await stack.row_results(manual.job_id))

    expected = {
        1: [("username", "alee", "ann.lee")],
        2: [("email_address", bo.email, moved_bo)],
        3: [
            ("username", "", "dee.may"),
            ("email_address", "", moved_dee),
            ("first_name", "", "Dee"),
            ("last_name", "", "May"),
            ("status", "", "ACTIVE"),
        ],
        4: [("first_name", "Dee", "Deanna"), ("auth_identifier", "", "D-9")],
    }
    assert preview_changes == expected
    assert manual_changes == expected
    counts = {
        "username": 2,
        "email_address": 2,
        "first_name": 2,
        "last_name": 1,
        "status": 1,
        "auth_identifier": 1,
    }
    assert dict(preview_job.counts.field_changes) == counts
    assert dict(manual_job.counts.field_changes) == counts
    assert (await campus.user(ann.id)).username == "ann.lee"
    assert (await campus.user(bo.id)).email == moved_bo

    # the careers office reads the same through the CLI
    command = ["--import-addr", stack.import_addr, "--token", stack.admin_token, "import", "changes"]
    shown = await asyncio.to_thread(CliRunner().invoke, app, [*command, manual.job_id, "--json"])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    assert payload["field_changes"] == counts
    listed = [(c["row_number"], c["field"], c["old_value"], c["new_value"]) for c in payload["changes"]]
    assert listed == [(row, *change) for row, changes in expected.items() for change in changes]
