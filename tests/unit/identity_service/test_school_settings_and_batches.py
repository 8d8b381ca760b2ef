"""Issue 9 use cases on the in-memory unit of work: school settings (CreateSchool's new fields,
UpdateSchool with its mask and who may change what) and the bulk decisions (BatchApproveStudents,
BatchDeclineStudents: one outcome per id, one audit event per decided student, idempotent)."""

from __future__ import annotations

import uuid

import pytest

from identity_service.domain.users import UserStatus, UserType
from identity_service.service import accounts, pending, schools
from identity_service.service.models import School
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller
from shared.settings import Role
from tests.unit.identity_service.fakes import FakeDatabase
from tests.unit.identity_service.test_use_cases import ADMIN, staff_of, stored, user


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


async def campus(db: FakeDatabase, **settings: object) -> School:
    return await schools.create_school(
        db.factory(),
        ADMIN,
        "Northfield",
        ["uni.example"],
        False,
        "",
        **settings,  # type: ignore[arg-type]
    )


async def refused(call: object) -> RollcallError:
    with pytest.raises(RollcallError) as caught:
        await call  # type: ignore[misc]
    return caught.value


def violations(error: RollcallError) -> list[str]:
    return [v.field for v in error.violations]


# ---- CreateSchool's settings ----------------------------------------------------------------------


async def test_a_new_school_guards_at_ten_percent_unless_told(db: FakeDatabase) -> None:
    plain = await campus(db)
    assert (plain.change_threshold_percent, plain.notify_emails) == (10, ())
    off = await campus(
        db, change_threshold_percent=0, notify_emails=["Office@Uni.example", "office@uni.example"]
    )
    assert off.change_threshold_percent == 0  # 0 is told from "not given": the guard is off
    assert off.notify_emails == ("Office@uni.example",)  # one per identity key
    assert db.audit[-1].details["change_threshold_percent"] == [None, 0]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"change_threshold_percent": 101}, "change_threshold_percent"),
        ({"change_threshold_percent": -1}, "change_threshold_percent"),
        ({"notify_emails": ["not an address"]}, "notify_emails[0]"),
        ({"notify_emails": [f"n{i}@uni.example" for i in range(21)]}, "notify_emails"),
    ],
)
async def test_create_school_refuses_bad_settings(
    db: FakeDatabase, settings: dict[str, object], field: str
) -> None:
    error = await refused(campus(db, **settings))
    assert field in violations(error) and not db.schools


# ---- UpdateSchool ---------------------------------------------------------------------------------


async def test_admin_changes_domains_and_the_audit_says_old_and_new(db: FakeDatabase) -> None:
    made = await campus(db)
    updated = await schools.update_school(
        db.factory(),
        ADMIN,
        made.id,
        ["email_domains", "sso_enabled"],
        "",
        email_domains=["Uni.example", "alumni.uni.example"],
        sso_enabled=True,
        name="ignored: not in the mask",
    )
    assert updated.email_domains == ("uni.example", "alumni.uni.example") and updated.sso_enabled
    assert updated.name == "Northfield" and updated.create_time == made.create_time
    last = db.audit[-1]
    assert (last.action, last.school_id, last.user_id) == ("school.updated", made.id, None)
    assert last.details == {
        "email_domains": [["uni.example"], ["uni.example", "alumni.uni.example"]],
        "sso_enabled": [False, True],
    }
    # ResolveSignIn's hint follows the current domains
    hint = await accounts.resolve_sign_in_help(db.factory(), "ann@gmail.com", made.id)
    assert hint.domains == ("uni.example", "alumni.uni.example") and hint.sso_enabled


async def test_staff_change_the_import_settings_of_their_school_only(db: FakeDatabase) -> None:
    made = await campus(db)
    staff = await staff_of(db, made.id)
    updated = await schools.update_school(
        db.factory(),
        staff,
        made.id,
        ["change_threshold_percent", "notify_emails"],
        "",
        change_threshold_percent=25,
        notify_emails=["careers@uni.example"],
    )
    assert (updated.change_threshold_percent, updated.notify_emails) == (25, ("careers@uni.example",))
    assert db.audit[-1].actor_id == staff.actor_id

    denied = await refused(
        schools.update_school(db.factory(), staff, made.id, ["name", "notify_emails"], "", name="Other")
    )
    assert denied.reason is Reason.PERMISSION_DENIED and "name" in denied.message
    assert db.schools[made.id].name == "Northfield"

    elsewhere = await staff_of(db, (await campus(db)).id)
    other = await refused(
        schools.update_school(db.factory(), elsewhere, made.id, ["notify_emails"], "", notify_emails=[])
    )
    assert other.reason is Reason.NOT_STAFF_OF_SCHOOL


@pytest.mark.parametrize("mask", [[], ["nickname"], ["name", "create_time"]])
async def test_an_empty_or_unknown_mask_names_update_mask(db: FakeDatabase, mask: list[str]) -> None:
    made = await campus(db)
    error = await refused(schools.update_school(db.factory(), ADMIN, made.id, mask, "", name="X"))
    assert violations(error) == ["update_mask"]


async def test_update_school_checks_each_field_like_create(db: FakeDatabase) -> None:
    made = await campus(db)
    error = await refused(
        schools.update_school(
            db.factory(),
            ADMIN,
            made.id,
            ["name", "email_domains", "change_threshold_percent"],
            "",
            name=" ",
            email_domains=["not a domain!"],
            change_threshold_percent=250,
        )
    )
    assert set(violations(error)) == {
        "school.name",
        "school.email_domains[0]",
        "school.change_threshold_percent",
    }
    assert db.schools[made.id] == made


async def test_update_school_is_idempotent_and_a_no_change_is_not_audited(db: FakeDatabase) -> None:
    made = await campus(db)
    events = len(db.audit)
    args = (db.factory(), ADMIN, made.id, ["change_threshold_percent"], "r-1")
    first = await schools.update_school(*args, change_threshold_percent=30)
    again = await schools.update_school(*args, change_threshold_percent=30)
    assert first == again and len(db.audit) == events + 1
    reused = await refused(schools.update_school(*args, change_threshold_percent=31))
    assert reused.reason is Reason.REQUEST_ID_REUSED
    same = await schools.update_school(
        db.factory(), ADMIN, made.id, ["change_threshold_percent"], "", change_threshold_percent=30
    )
    assert same.change_threshold_percent == 30 and len(db.audit) == events + 1


async def test_update_of_an_unknown_school_is_not_found(db: FakeDatabase) -> None:
    error = await refused(
        schools.update_school(db.factory(), ADMIN, str(uuid.uuid4()), ["name"], "", name="X")
    )
    assert error.reason is Reason.SCHOOL_NOT_FOUND


# ---- bulk decisions -------------------------------------------------------------------------------


async def pending_students(db: FakeDatabase, school_id: str, count: int) -> list[str]:
    made = []
    for _ in range(count):
        address = f"s{uuid.uuid4().hex[:10]}@uni.example"
        made.append((await stored(db, user(school_id, address, status=UserStatus.PENDING))).id)
    return made


async def test_batch_approve_decides_each_id_on_its_own_in_order(db: FakeDatabase) -> None:
    home, away = await campus(db), await campus(db)
    staff = await staff_of(db, home.id)
    ids = await pending_students(db, home.id, 3)
    active = (await stored(db, user(home.id, "active@uni.example"))).id
    foreign = (await pending_students(db, away.id, 1))[0]
    unknown = str(uuid.uuid4())
    asked = [ids[0], "not-an-id", active, ids[1], foreign, unknown, ids[0].upper(), ids[2]]
    events = len(db.audit)

    results = await pending.batch_approve_students(db.factory(), staff, home.id, asked, "checked", "")

    assert [r.error_reason for r in results] == [
        "",
        Reason.INVALID_ARGUMENT,
        Reason.NOT_PENDING,
        "",
        Reason.NOT_SAME_SCHOOL,
        Reason.USER_NOT_FOUND,
        Reason.INVALID_ARGUMENT,  # a repeat of user_ids[0], decided there
        "",
    ]
    assert [r.user_id for r in results] == [
        ids[0],
        "not-an-id",
        active,
        ids[1],
        foreign,
        unknown,
        ids[0],
        ids[2],
    ]
    assert "user_ids[1]" in results[1].error_message and "user_ids[0]" in results[6].error_message
    assert results[4].user is None and foreign not in results[4].error_message  # nothing of the other school
    assert all(r.user and r.user.status is UserStatus.ACTIVE for r in results if not r.error_reason)
    assert db.users[foreign].status is UserStatus.PENDING
    new = db.audit[events:]
    assert [(e.action, e.user_id) for e in new] == [("user.approved", i) for i in ids]
    assert new[0].details == {"status": ["PENDING", "ACTIVE"], "note": "checked"}  # ApproveStudent's shape


async def test_batch_decline_keeps_the_reason_and_the_single_rpc_shape(db: FakeDatabase) -> None:
    home = await campus(db)
    staff = await staff_of(db, home.id)
    single, batch = await pending_students(db, home.id, 2)
    await pending.decline_student(db.factory(), staff, single, "not ours", "")
    results = await pending.batch_decline_students(
        db.factory(), staff, home.id, [batch, single], "not ours", ""
    )
    assert [r.error_reason for r in results] == ["", Reason.NOT_PENDING]
    one, other = db.audit[-2], db.audit[-1]
    assert (one.action, one.details) == (
        other.action,
        {"status": ["PENDING", "DECLINED"], "reason": "not ours"},
    )
    assert one.details == other.details


async def test_a_repeated_batch_request_changes_nothing(db: FakeDatabase) -> None:
    home = await campus(db)
    staff = await staff_of(db, home.id)
    ids = await pending_students(db, home.id, 4)
    first = await pending.batch_approve_students(db.factory(), staff, home.id, ids, "", "batch-1")
    events, versions = len(db.audit), {i: db.users[i].version for i in ids}
    again = await pending.batch_approve_students(db.factory(), staff, home.id, ids, "", "batch-1")
    assert again == first and len(db.audit) == events
    assert {i: db.users[i].version for i in ids} == versions
    reused = await refused(
        pending.batch_approve_students(db.factory(), staff, home.id, ids[:2], "", "batch-1")
    )
    assert reused.reason is Reason.REQUEST_ID_REUSED


@pytest.mark.parametrize(("count", "field"), [(0, "user_ids"), (501, "user_ids")])
async def test_batch_size_is_one_to_five_hundred(db: FakeDatabase, count: int, field: str) -> None:
    home = await campus(db)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    error = await refused(pending.batch_approve_students(db.factory(), ADMIN, home.id, ids, "", ""))
    assert violations(error) == [field]


async def test_batch_needs_staff_of_the_school(db: FakeDatabase) -> None:
    home, away = await campus(db), await campus(db)
    ids = await pending_students(db, home.id, 1)
    elsewhere = await staff_of(db, away.id)
    for caller in (elsewhere, Caller("web", Role.PLATFORM, None)):
        error = await refused(pending.batch_approve_students(db.factory(), caller, home.id, ids, "", ""))
        assert error.reason is Reason.NOT_STAFF_OF_SCHOOL
    assert db.users[ids[0]].status is UserStatus.PENDING
    missing = await refused(
        pending.batch_approve_students(db.factory(), ADMIN, str(uuid.uuid4()), ids, "", "")
    )
    assert missing.reason is Reason.SCHOOL_NOT_FOUND


async def test_staff_are_never_decided_by_a_batch(db: FakeDatabase) -> None:
    home = await campus(db)
    staff = await staff_of(db, home.id)
    results = await pending.batch_decline_students(
        db.factory(), ADMIN, home.id, [staff.actor_id or ""], "", ""
    )
    assert results[0].error_reason == Reason.NOT_PENDING
    assert db.users[staff.actor_id or ""].user_type is UserType.STAFF
