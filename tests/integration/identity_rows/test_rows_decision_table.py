"""Every row of product.md's decision table through apply_student_rows, against PostgreSQL."""

from __future__ import annotations

import json

import pytest

from identity_service.domain.student_file import SENSITIVE_FIELDS_MESSAGE, ImportMode, RowOutcome, RowReason
from shared.errors import Reason, RollcallError
from tests.integration.identity_rows.rows_support import CLIENT, Campus, new_campus, row, unique

MANUAL = ImportMode.MANUAL_FILE


async def test_row_1_invalid_row_names_the_field(campus: Campus) -> None:
    [result] = await campus.apply([row(1, "ann", "not-an-address")])
    assert (result.outcome, result.reason, result.user_id) == (RowOutcome.FAILED, RowReason.INVALID_ROW, None)
    assert "email_address" in result.message
    assert await campus.students() == []


async def test_row_4_creates_an_active_student_from_the_file(campus: Campus) -> None:
    email = campus.email("Ann.Lee")
    [result] = await campus.apply([row(1, "ann", email, "Ann", "Lee", "sis-1")], job_id="job-create")
    assert (result.outcome, result.reason, result.approved) == (RowOutcome.CREATED, None, False)
    user = await campus.user(result.user_id or "")
    assert (user["status"], user["origin"], user["user_type"]) == ("ACTIVE", "STUDENT_FILE", "STUDENT")
    assert (user["username"], user["email"], user["first_name"], user["auth_identifier"]) == (
        "ann",
        email,
        "Ann",
        "sis-1",
    )
    assert (user["last_import_job_id"], user["last_import_row"]) == ("job-create", 1)
    [event] = await campus.audit()
    assert (event["action"], event["client"], event["actor_id"]) == ("user.created_by_file", CLIENT, None)
    details = json.loads(event["details"])
    assert details["username"] == [None, "ann"] and details["job_id"] == "job-create"
    assert details["row_number"] == 1


async def test_row_2_email_taken_by_staff_or_by_a_student_of_another_school(campus: Campus) -> None:
    staff_email = campus.email()
    await campus.add_user("boss", staff_email, user_type="STAFF", origin="STAFF")
    elsewhere = await new_campus(campus.db, campus.factory)
    other_email = elsewhere.email()
    await elsewhere.add_user("zed", other_email)
    results = await campus.apply([row(1, "ann", staff_email), row(2, "zed", other_email)])
    assert [(r.outcome, r.reason) for r in results] == [(RowOutcome.FAILED, RowReason.EMAIL_TAKEN)] * 2
    assert [r["username"] for r in await campus.students()] == ["boss"]


async def test_row_3_username_and_email_of_two_different_students(campus: Campus) -> None:
    await campus.add_user("ann", campus.email())
    bob_email = campus.email()
    await campus.add_user("bob", bob_email)
    [result] = await campus.apply([row(1, "ann", bob_email)])
    assert (result.outcome, result.reason) == (RowOutcome.FAILED, RowReason.IDENTITY_CONFLICT)


async def test_a_staff_username_at_the_school_is_a_conflict_not_a_retry_loop(campus: Campus) -> None:
    await campus.add_user("boss", campus.email(), user_type="STAFF", origin="STAFF")
    [result] = await campus.apply([row(1, "boss", campus.email())])
    assert (result.outcome, result.reason) == (RowOutcome.FAILED, RowReason.IDENTITY_CONFLICT)


async def test_row_5_file_updates_disabled_skips(campus: Campus) -> None:
    email = campus.email()
    user_id = await campus.add_user("ann", email, first="Ann", file_updates_disabled=True)
    [result] = await campus.apply([row(1, "ann", email, "Anna")])
    assert (result.outcome, result.reason, result.user_id) == (
        RowOutcome.SKIPPED,
        RowReason.FILE_UPDATES_DISABLED,
        user_id,
    )
    user = await campus.user(user_id)
    assert (user["first_name"], user["version"], user["last_import_row"]) == ("Ann", 1, None)


async def test_row_6_updated_unchanged_and_pending_approved(campus: Campus) -> None:
    emails = [campus.email() for _ in range(3)]
    changed = await campus.add_user("ann", emails[0], first="Ann")
    same = await campus.add_user("bob", emails[1], first="Bob")
    pending = await campus.add_user("cy", emails[2], status="PENDING", origin="SELF_SIGNUP")
    results = await campus.apply(
        [row(1, "ANN", emails[0].upper(), "Anna"), row(2, "bob", emails[1], "Bob"), row(3, "cy", emails[2])]
    )
    assert [(r.outcome, r.approved, r.user_id) for r in results] == [
        (RowOutcome.UPDATED, False, changed),
        (RowOutcome.UNCHANGED, False, same),
        (RowOutcome.UPDATED, True, pending),
    ]
    assert (await campus.user(changed))["first_name"] == "Anna"
    assert (await campus.user(changed))["version"] == 2
    assert (await campus.user(same))["version"] == 1
    assert (await campus.user(pending))["status"] == "ACTIVE"
    events = {str(e["user_id"]): json.loads(e["details"]) for e in await campus.audit()}
    assert same not in events
    assert events[changed]["first_name"] == ["Ann", "Anna"]
    assert events[pending]["status"] == ["PENDING", "ACTIVE"]
    assert events[pending]["approved"] is True


async def test_row_7_sensitive_update_sets_username_email_auth_and_approves(campus: Campus) -> None:
    self_registered = campus.email()
    by_email = await campus.add_user(self_registered, self_registered, status="PENDING", auth="old")
    by_username = await campus.add_user("bob", campus.email())
    new_email = campus.email()
    results = await campus.apply(
        [row(1, "ann", self_registered, auth="sis-9"), row(2, "bob", new_email)],
        mode=MANUAL,
        sensitive=True,
    )
    assert [(r.outcome, r.approved, r.user_id) for r in results] == [
        (RowOutcome.UPDATED, True, by_email),
        (RowOutcome.UPDATED, False, by_username),
    ]
    first = await campus.user(by_email)
    assert (first["username"], first["auth_identifier"], first["status"]) == ("ann", "sis-9", "ACTIVE")
    assert (await campus.user(by_username))["email"] == new_email


@pytest.mark.parametrize(("mode", "sensitive"), [(ImportMode.ONGOING_SYNC, True), (MANUAL, False)])
async def test_row_8_sensitive_change_without_the_setting(
    campus: Campus, mode: ImportMode, sensitive: bool
) -> None:
    email = campus.email()
    user_id = await campus.add_user(email, email, status="PENDING")
    [result] = await campus.apply([row(1, "ann", email)], mode=mode, sensitive=sensitive)
    assert (result.outcome, result.reason, result.message) == (
        RowOutcome.FAILED,
        RowReason.SENSITIVE_FIELDS_REQUIRED,
        "attempting to update sensitive fields without sensitive fields setting",
    )
    assert result.message == SENSITIVE_FIELDS_MESSAGE
    assert (await campus.user(user_id))["version"] == 1


async def test_row_9_auth_identifier_change_needs_the_setting_but_a_blank_one_is_filled(
    campus: Campus,
) -> None:
    emails = [campus.email(), campus.email()]
    await campus.add_user("ann", emails[0], auth="sis-1")
    blank = await campus.add_user("bob", emails[1])
    results = await campus.apply([row(1, "ann", emails[0], auth="sis-2"), row(2, "bob", emails[1], auth="b")])
    assert [(r.outcome, r.reason) for r in results] == [
        (RowOutcome.FAILED, RowReason.SENSITIVE_FIELDS_REQUIRED),
        (RowOutcome.UPDATED, None),
    ]
    assert (await campus.user(blank))["auth_identifier"] == "b"


async def test_an_unknown_school_is_refused(campus: Campus) -> None:
    campus.school_id = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(RollcallError) as caught:
        await campus.apply([row(1, "ann", f"{unique()}@x.edu")])
    assert caught.value.reason is Reason.SCHOOL_NOT_FOUND
