"""Every identity use case on the in-memory unit of work (cosmicpython's test_handlers.py style):
no database, no gRPC; each test drives one use case and reads the fake tables afterwards."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from identity_service.domain.codes import hash_code
from identity_service.domain.email_changes import EmailChangeState
from identity_service.domain.passwords import PasswordHasher
from identity_service.domain.student_file import FieldChange, ImportMode, IncomingRow, RowOutcome, RowReason
from identity_service.domain.users import User, UserOrigin, UserStatus, UserType
from identity_service.service import (
    accounts,
    audit_trail,
    authentication,
    email_change,
    email_confirmation,
    file_updates,
    merge,
    pending,
    schools,
    search,
)
from identity_service.service.email_change import CodeSettings
from identity_service.service.hashing import AsyncPasswordHasher
from identity_service.service.models import School
from identity_service.service.student_file import RowBatchRequest, apply_student_rows
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller
from shared.settings import Role
from tests.unit.identity_service.fakes import FakeDatabase

ADMIN = Caller("admin-console", Role.ADMIN)
IMPORTER = Caller("importer", Role.IMPORTER) if hasattr(Role, "IMPORTER") else ADMIN
CODES = CodeSettings()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture(scope="module")
def hasher() -> AsyncPasswordHasher:
    return AsyncPasswordHasher(PasswordHasher(time_cost=1, memory_cost_kib=8, parallelism=1))


async def school(db: FakeDatabase, domains: tuple[str, ...] = ("uni.example",)) -> School:
    return await schools.create_school(db.factory(), ADMIN, "Northfield", list(domains), False, "")


def user(school_id: str | None, email: str, **values: object) -> User:
    base = dict(
        id=str(uuid.uuid4()),
        user_type=UserType.STUDENT,
        status=UserStatus.ACTIVE,
        school_id=school_id,
        username=email,
        email=email,
        first_name="Ann",
        last_name="Lee",
        auth_identifier="",
        origin=UserOrigin.STAFF,
        file_updates_disabled=False,
        email_verified=False,
        create_time=T0,
        update_time=T0,
        version=1,
    )
    return User(**(base | values))  # type: ignore[arg-type]


async def stored(db: FakeDatabase, new: User) -> User:
    async with db.factory()() as uow:
        return await uow.users.add(new, None)


async def staff_of(db: FakeDatabase, school_id: str) -> Caller:
    member = await stored(
        db, user(school_id, f"staff{uuid.uuid4().hex[:6]}@uni.example", user_type=UserType.STAFF)
    )
    return Caller("web", Role.PLATFORM, member.id)


# ---- schools ------------------------------------------------------------------------------------


async def test_create_school_normalises_domains_and_audits(db: FakeDatabase) -> None:
    made = await schools.create_school(
        db.factory(), ADMIN, " Northfield ", ["UNI.example", "uni.example"], True, ""
    )
    assert (made.name, made.email_domains) == ("Northfield", ("uni.example",))
    assert [e.action for e in db.audit] == ["school.created"]
    assert await schools.get_school(db.factory(), made.id) == made


async def test_get_school_unknown_is_not_found(db: FakeDatabase) -> None:
    with pytest.raises(RollcallError) as caught:
        await schools.get_school(db.factory(), str(uuid.uuid4()))
    assert caught.value.reason is Reason.SCHOOL_NOT_FOUND


# ---- accounts and idempotency -------------------------------------------------------------------


async def test_create_user_defaults_a_students_username_and_audits(db: FakeDatabase) -> None:
    campus = await school(db)
    made = await accounts.create_user(
        db.factory(),
        ADMIN,
        user_type=UserType.STUDENT,
        school_id=campus.id,
        email="ann@Uni.example",
        username="",
        first_name="Ann",
        last_name="Lee",
        auth_identifier="",
        request_id="",
    )
    assert (made.username, made.email, made.origin) == (
        "ann@uni.example",
        "ann@uni.example",
        UserOrigin.STAFF,
    )
    assert db.audit[-1].action == "user.created" and db.audit[-1].details["email"] == [
        None,
        "ann@uni.example",
    ]


async def test_a_taken_email_is_refused_and_nothing_is_written(db: FakeDatabase) -> None:
    campus = await school(db)
    await stored(db, user(campus.id, "ann@uni.example"))
    events = len(db.audit)
    with pytest.raises(RollcallError) as caught:
        await accounts.create_user(
            db.factory(),
            ADMIN,
            user_type=UserType.STUDENT,
            school_id=campus.id,
            email="ANN@uni.example",
            username="other",
            first_name="",
            last_name="",
            auth_identifier="",
            request_id="r1",
        )
    assert caught.value.reason is Reason.EMAIL_TAKEN
    assert len(db.audit) == events and db.answers == {}


async def test_a_repeated_request_id_replays_the_first_answer_once(db: FakeDatabase) -> None:
    campus = await school(db)
    ask = dict(
        user_type=UserType.STUDENT,
        school_id=campus.id,
        email="bo@uni.example",
        username="bo",
        first_name="Bo",
        last_name="Ng",
        auth_identifier="",
        request_id="same",
    )
    first = await accounts.create_user(db.factory(), ADMIN, **ask)  # type: ignore[arg-type]
    again = await accounts.create_user(db.factory(), ADMIN, **ask)  # type: ignore[arg-type]
    assert again == first and len(db.users) == 1
    with pytest.raises(RollcallError) as caught:
        await accounts.create_user(db.factory(), ADMIN, **(ask | {"first_name": "Other"}))  # type: ignore[arg-type]
    assert caught.value.reason is Reason.REQUEST_ID_REUSED


async def test_sign_up_makes_a_pending_student(db: FakeDatabase, hasher: AsyncPasswordHasher) -> None:
    campus = await school(db)
    made = await accounts.sign_up_student(
        db.factory(),
        hasher,
        Caller("web", Role.PLATFORM),
        school_id=campus.id,
        email="cy@uni.example",
        first_name="Cy",
        last_name="Po",
        password="a long enough passphrase",
        request_id="",
    )
    assert (made.status, made.origin) == (UserStatus.PENDING, UserOrigin.SELF_SIGNUP)
    assert db.passwords[made.id] and db.audit[-1].actor_id == made.id


async def test_reads_are_read_only_units_of_work(db: FakeDatabase) -> None:
    campus = await school(db)
    ann = await stored(db, user(campus.id, "ann@uni.example"))
    db.opened.clear()
    assert await accounts.get_user(db.factory(), ADMIN, ann.id) == ann
    assert (await accounts.lookup_user_by_email(db.factory(), ADMIN, "ANN@uni.example")).id == ann.id
    answer = await accounts.resolve_sign_in_help(db.factory(), "ann@uni.example", campus.id)
    assert answer.domains == ("uni.example",)
    assert all(options["read_only"] for options in db.opened)


async def test_platform_staff_of_another_school_may_not_read(db: FakeDatabase) -> None:
    mine, theirs = await school(db), await school(db)
    ann = await stored(db, user(theirs.id, "ann@uni.example"))
    with pytest.raises(RollcallError) as caught:
        await accounts.get_user(db.factory(), await staff_of(db, mine.id), ann.id)
    assert caught.value.reason is Reason.NOT_STAFF_OF_SCHOOL


# ---- authentication -----------------------------------------------------------------------------


async def test_authenticate_checks_the_password_and_counts_failures(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    campus = await school(db)
    made = await accounts.sign_up_student(
        db.factory(),
        hasher,
        ADMIN,
        school_id=campus.id,
        email="di@uni.example",
        first_name="Di",
        last_name="Ro",
        password="a long enough passphrase",
        request_id="",
    )
    with pytest.raises(RollcallError) as caught:  # PENDING: same answer as a wrong password
        await authentication.authenticate(db.factory(), hasher, "di@uni.example", "a long enough passphrase")
    assert caught.value.reason is Reason.INVALID_CREDENTIALS
    await pending.approve_student(db.factory(), ADMIN, made.id, "", "")
    signed_in = await authentication.authenticate(
        db.factory(), hasher, "DI@uni.example", "a long enough passphrase"
    )
    assert signed_in.id == made.id and db.rate_events == []  # a success clears the count
    for _ in range(authentication.SIGN_IN_LIMIT):
        with pytest.raises(RollcallError):
            await authentication.authenticate(db.factory(), hasher, "di@uni.example", "wrong")
    with pytest.raises(RollcallError) as caught:
        await authentication.authenticate(db.factory(), hasher, "di@uni.example", "a long enough passphrase")
    assert caught.value.reason is Reason.RATE_LIMITED


# ---- pending queue, merge -----------------------------------------------------------------------


async def test_approve_decline_and_delete_pending_students(db: FakeDatabase) -> None:
    campus = await school(db)
    staff = await staff_of(db, campus.id)
    a = await stored(db, user(campus.id, "a@uni.example", status=UserStatus.PENDING))
    b = await stored(db, user(campus.id, "b@uni.example", status=UserStatus.PENDING))
    page = await pending.list_pending_students(db.factory(), staff, campus.id, 10, "")
    assert {u.id for u in page.items} == {a.id, b.id}
    approved = await pending.approve_student(db.factory(), staff, a.id, "known", "")
    assert approved.status is UserStatus.ACTIVE and db.audit[-1].details["note"] == "known"
    declined = await pending.decline_student(db.factory(), staff, b.id, "unknown", "")
    assert declined.status is UserStatus.DECLINED
    await pending.delete_pending_student(db.factory(), staff, b.id, "")
    assert b.id not in db.users and db.audit[-1].action == "user.deleted"
    with pytest.raises(RollcallError):
        await pending.approve_student(db.factory(), staff, a.id, "", "")  # no longer PENDING


async def test_merge_deletes_the_pending_account_and_opens_a_change(db: FakeDatabase) -> None:
    campus = await school(db)
    staff = await staff_of(db, campus.id)
    old = await stored(db, user(campus.id, "ann.old@uni.example", username="ann"))
    new = await stored(db, user(campus.id, "ann@gmail.com", status=UserStatus.PENDING))
    change = await merge.merge_pending_student(
        db.factory(), CODES, staff, pending_user_id=new.id, existing_user_id=old.id, request_id=""
    )
    assert new.id not in db.users and change.new_email == "ann@gmail.com" and change.file_updates_disabled
    assert [e.action for e in db.audit][-2:] == ["user.merged", "email_change.requested"]
    [mail] = [r["mail"] for r in db.outbox.values()]
    assert mail.to == "ann@gmail.com" and mail.email_change_id == change.id


# ---- email change and confirmation --------------------------------------------------------------


async def test_request_then_confirm_an_email_change(db: FakeDatabase, hasher: AsyncPasswordHasher) -> None:
    campus = await school(db)
    staff = await staff_of(db, campus.id)
    ann = await stored(db, user(campus.id, "ann@uni.example"))
    change = await email_change.request_email_change(
        db.factory(),
        CODES,
        staff,
        user_id=ann.id,
        new_email="ann@gmail.com",
        disable_file_updates=True,
        request_id="",
    )
    record = db.changes[change.id]
    db.changes[change.id] = record.__class__(
        **{**record.__dict__, "code_hash": hash_code("ABCDEFGH", change.id, CODES.keys[0])}
    )
    with pytest.raises(RollcallError) as caught:
        await email_confirmation.confirm_email_change(
            db.factory(), hasher, CODES, ADMIN, user_id=ann.id, code="WRONGONE", new_password=""
        )
    assert caught.value.reason is Reason.CODE_INVALID and db.changes[change.id].attempts == 1  # counted, kept
    confirmed = await email_confirmation.confirm_email_change(
        db.factory(), hasher, CODES, ADMIN, user_id=ann.id, code="abcd-efgh", new_password=""
    )
    assert (confirmed.email, confirmed.email_verified) == ("ann@gmail.com", True)
    assert db.changes[change.id].state is EmailChangeState.CONFIRMED
    assert [r["mail"].to for r in db.outbox.values()][
        -1
    ] == "ann@uni.example"  # the notice to the old address


async def test_a_new_request_replaces_the_pending_one_and_drops_its_mail(db: FakeDatabase) -> None:
    campus = await school(db)
    staff = await staff_of(db, campus.id)
    ann = await stored(db, user(campus.id, "ann@uni.example"))
    ask = dict(user_id=ann.id, disable_file_updates=True, request_id="")
    first = await email_change.request_email_change(
        db.factory(), CODES, staff, new_email="a1@gmail.com", **ask
    )  # type: ignore[arg-type]
    await email_change.request_email_change(db.factory(), CODES, staff, new_email="a2@gmail.com", **ask)  # type: ignore[arg-type]
    assert db.changes[first.id].state is EmailChangeState.CANCELLED
    assert [r["status"] for r in db.outbox.values()] == ["ABANDONED", "PENDING"]
    cancelled = await email_change.cancel_email_change(db.factory(), staff, ann.id, "")
    assert cancelled.state is EmailChangeState.CANCELLED


async def test_an_email_change_to_a_taken_address_is_refused(db: FakeDatabase) -> None:
    campus = await school(db)
    staff = await staff_of(db, campus.id)
    ann = await stored(db, user(campus.id, "ann@uni.example"))
    await stored(db, user(campus.id, "bo@uni.example"))
    with pytest.raises(RollcallError) as caught:
        await email_change.request_email_change(
            db.factory(),
            CODES,
            staff,
            user_id=ann.id,
            new_email="BO@uni.example",
            disable_file_updates=True,
            request_id="",
        )
    assert caught.value.reason is Reason.EMAIL_TAKEN and db.changes == {} and db.outbox == {}


# ---- file updates, search, audit trail ----------------------------------------------------------


async def test_file_updates_switch_audits_only_a_change(db: FakeDatabase) -> None:
    campus = await school(db)
    staff = await staff_of(db, campus.id)
    ann = await stored(db, user(campus.id, "ann@uni.example"))
    off = await file_updates.set_file_updates(db.factory(), staff, ann.id, False, "")
    assert off.file_updates_disabled and db.audit[-1].action == "user.file_updates_disabled"
    events = len(db.audit)
    await file_updates.set_file_updates(db.factory(), staff, ann.id, False, "")
    assert len(db.audit) == events


async def test_search_pages_by_name(db: FakeDatabase) -> None:
    campus = await school(db)
    staff = await staff_of(db, campus.id)
    for n, last in enumerate(["Cole", "Abel", "Bray"]):
        await stored(db, user(campus.id, f"s{n}@uni.example", last_name=last, first_name="Sam"))
    ask = dict(school_id=campus.id, query="sam", user_types=[UserType.STUDENT], statuses=[])
    first = await search.search_users(db.factory(), staff, page_size=2, page_token="", **ask)  # type: ignore[arg-type]
    assert [u.last_name for u in first.items] == ["Abel", "Bray"] and first.next_page_token
    rest = await search.search_users(
        db.factory(), staff, page_size=2, page_token=first.next_page_token, **ask
    )  # type: ignore[arg-type]
    assert [u.last_name for u in rest.items] == ["Cole"] and rest.next_page_token == ""


async def test_duplicate_candidates_of_a_pending_student(db: FakeDatabase) -> None:
    campus = await school(db)
    staff = await staff_of(db, campus.id)
    old = await stored(db, user(campus.id, "ann.lee@uni.example"))
    new = await stored(db, user(campus.id, "ann.lee@gmail.com", status=UserStatus.PENDING))
    found = await search.find_duplicate_candidates(db.factory(), staff, new.id)
    assert [c.user.id for c in found] == [old.id]


async def test_audit_trail_lists_newest_first_and_pages(db: FakeDatabase) -> None:
    campus = await school(db)
    staff = await staff_of(db, campus.id)
    ann = await stored(db, user(campus.id, "ann@uni.example"))
    for enabled in (False, True, False):
        await file_updates.set_file_updates(db.factory(), staff, ann.id, enabled, "")
    page = await audit_trail.list_audit_events(db.factory(), staff, campus.id, ann.id, 2, "")
    assert [e.action for e in page.items] == ["user.file_updates_disabled", "user.file_updates_enabled"]
    rest = await audit_trail.list_audit_events(
        db.factory(), staff, campus.id, ann.id, 2, page.next_page_token
    )
    assert [e.action for e in rest.items] == ["user.file_updates_disabled"]


# ---- the student file ---------------------------------------------------------------------------


def rows_request(
    school_id: str, rows: list[IncomingRow], job: str = "job-1", dry_run: bool = False
) -> RowBatchRequest:
    return RowBatchRequest(school_id, job, T0, ImportMode.MANUAL_FILE, False, dry_run, rows)


async def test_student_file_creates_updates_and_audits_through_the_port(db: FakeDatabase) -> None:
    campus = await school(db)
    rows = [
        IncomingRow(1, "ann", "ann@uni.example", "Ann", "Lee"),
        IncomingRow(2, "ANN", "Ann@uni.example", "Anne"),
    ]
    results = await apply_student_rows(db.factory(), rows_request(campus.id, rows), "importer")
    assert [r.outcome for r in results] == [RowOutcome.CREATED, RowOutcome.UPDATED]
    [student] = [u for u in db.users.values() if u.origin is UserOrigin.STUDENT_FILE]
    assert student.first_name == "Anne" and results[1].user_id == student.id
    assert [(e.action, e.details["row_number"]) for e in db.audit[-2:]] == [
        ("user.created_by_file", 2),
        ("user.updated_by_file", 2),
    ]
    assert db.opened[-1]["batch"] is True


async def test_student_file_replays_recorded_rows_and_dry_runs_write_nothing(db: FakeDatabase) -> None:
    campus = await school(db)
    rows = [IncomingRow(1, "bo", "bo@uni.example")]
    dry = await apply_student_rows(db.factory(), rows_request(campus.id, rows, dry_run=True), "importer")
    assert dry[0].outcome is RowOutcome.CREATED and db.outcomes == {} and len(db.users) == 0
    first = await apply_student_rows(db.factory(), rows_request(campus.id, rows), "importer")
    again = await apply_student_rows(db.factory(), rows_request(campus.id, rows), "importer")
    assert again == first and len(db.users) == 1


async def test_student_file_returns_and_replays_field_changes(db: FakeDatabase) -> None:
    campus = await school(db)
    pending_one = await stored(db, user(campus.id, "pat@uni.example", status=UserStatus.PENDING))
    rows = [
        IncomingRow(1, "bo", "bo@uni.example", "Bo"),
        IncomingRow(2, "pat@uni.example", "pat@uni.example", "Patricia"),
    ]
    request = rows_request(campus.id, rows, job="job-changes")
    dry = await apply_student_rows(db.factory(), replace(request, dry_run=True), "importer")
    first = await apply_student_rows(db.factory(), request, "importer")
    again = await apply_student_rows(db.factory(), request, "importer")
    assert [r.changes for r in dry] == [r.changes for r in first] == [r.changes for r in again]
    assert first[0].changes == (
        FieldChange("username", "", "bo"),
        FieldChange("email_address", "", "bo@uni.example"),
        FieldChange("first_name", "", "Bo"),
        FieldChange("status", "", "ACTIVE"),
    )
    assert first[1].user_id == pending_one.id
    assert first[1].changes == (
        FieldChange("first_name", "Ann", "Patricia"),
        FieldChange("status", "PENDING", "ACTIVE"),
    )
    assert db.outcomes[("job-changes", 2)].changes == first[1].changes


async def test_student_file_refuses_an_address_held_by_staff(db: FakeDatabase) -> None:
    campus = await school(db)
    await staff_of(db, campus.id)
    held = next(iter(db.users.values())).email
    [result] = await apply_student_rows(
        db.factory(), rows_request(campus.id, [IncomingRow(1, "x", held)]), "i"
    )
    assert (result.outcome, result.reason) == (RowOutcome.FAILED, RowReason.EMAIL_TAKEN)


async def test_student_file_unknown_school(db: FakeDatabase) -> None:
    with pytest.raises(RollcallError) as caught:
        await apply_student_rows(
            db.factory(), rows_request(str(uuid.uuid4()), [IncomingRow(1, "a", "a@u.edu")]), "i"
        )
    assert caught.value.reason is Reason.SCHOOL_NOT_FOUND


def test_expire_time_is_in_the_future() -> None:
    assert CODES.policy.expire_time(T0) > T0 + timedelta(minutes=1)
