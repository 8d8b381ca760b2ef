"""Issue 9's use cases on the in-memory unit of work: ResolveSsoSignIn's answers, a student file that
archives and restores (audited, dry runs writing nothing), and what an archived student can still do
(be found, keep its email) and cannot (sign in)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from identity_service.domain.passwords import PasswordHasher
from identity_service.domain.student_file import ImportMode, IncomingRow, RowOutcome, RowReason
from identity_service.domain.users import UserStatus, UserType
from identity_service.service import accounts, authentication, pending, schools, search, sso
from identity_service.service.hashing import AsyncPasswordHasher
from identity_service.service.student_file import RowBatchRequest, apply_student_rows
from shared.errors import Reason, RollcallError
from shared.grpc_kit.auth import Caller
from shared.settings import Role
from tests.unit.identity_service.fakes import FakeDatabase

ADMIN = Caller("admin-console", Role.ADMIN)
PLATFORM = Caller("web", Role.PLATFORM)
PASSWORD = "a long enough passphrase"


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture(scope="module")
def hasher() -> AsyncPasswordHasher:
    return AsyncPasswordHasher(PasswordHasher(time_cost=1, memory_cost_kib=8, parallelism=1))


async def _school(db: FakeDatabase, sso_enabled: bool = True) -> str:
    made = await schools.create_school(db.factory(), ADMIN, "Northfield", ["uni.example"], sso_enabled, "")
    return made.id


async def _rows(
    db: FakeDatabase, school_id: str, job: str, *rows: IncomingRow, dry_run: bool = False
) -> list:
    request = RowBatchRequest(
        school_id, job, datetime.now(UTC), ImportMode.ONGOING_SYNC, False, dry_run, list(rows)
    )
    return await apply_student_rows(db.factory(), request, "importer")


async def _refused(call: object, reason: Reason) -> None:
    with pytest.raises(RollcallError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.reason is reason, caught.value


async def test_resolve_sso_sign_in_answers_the_active_holder_of_the_subject_by_key(db: FakeDatabase) -> None:
    school_id = await _school(db)
    [created] = await _rows(
        db, school_id, "j1", IncomingRow(1, "ann", "ann@uni.example", "Ann", "Lee", "SSO-Ann")
    )
    staff = await accounts.create_user(
        db.factory(),
        ADMIN,
        user_type=UserType.STAFF,
        school_id=school_id,
        email="boss@uni.example",
        username="",
        first_name="B",
        last_name="S",
        auth_identifier="Boss-1",
        request_id="",
    )
    assert (await sso.resolve_sso_sign_in(db.factory(), school_id, " sso-ANN ")).id == created.user_id
    assert (await sso.resolve_sso_sign_in(db.factory(), school_id, "BOSS-1")).id == staff.id
    await _refused(sso.resolve_sso_sign_in(db.factory(), school_id, "nobody"), Reason.USER_NOT_FOUND)
    other = await _school(db)
    await _refused(sso.resolve_sso_sign_in(db.factory(), other, "sso-ann"), Reason.USER_NOT_FOUND)


async def test_resolve_sso_sign_in_refuses_by_status_and_schools_without_sso(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school_id = await _school(db)
    signed_up = await accounts.sign_up_student(
        db.factory(),
        hasher,
        PLATFORM,
        school_id=school_id,
        email="pat@gmail.com",
        first_name="Pat",
        last_name="P",
        password=PASSWORD,
        request_id="",
    )
    await _rows(
        db, school_id, "j1", IncomingRow(1, "pat@gmail.com", "pat@gmail.com", auth_identifier="PAT-1")
    )
    # the file row approved Pat (rows approve pending students): decline another to test DECLINED
    dee = await accounts.sign_up_student(
        db.factory(),
        hasher,
        PLATFORM,
        school_id=school_id,
        email="dee@gmail.com",
        first_name="Dee",
        last_name="D",
        password=PASSWORD,
        request_id="",
    )
    if True:
        db.users[dee.id] = replace(db.users[dee.id], auth_identifier="DEE-1")
        db.users[signed_up.id] = replace(db.users[signed_up.id], status=UserStatus.PENDING)
    await _refused(sso.resolve_sso_sign_in(db.factory(), school_id, "pat-1"), Reason.USER_PENDING)
    await pending.decline_student(db.factory(), ADMIN, dee.id, "", "")
    await _refused(sso.resolve_sso_sign_in(db.factory(), school_id, "dee-1"), Reason.USER_DECLINED)
    no_sso = await _school(db, sso_enabled=False)
    await _refused(sso.resolve_sso_sign_in(db.factory(), no_sso, "dee-1"), Reason.SSO_NOT_ENABLED)
    await _refused(sso.resolve_sso_sign_in(db.factory(), "", "x"), Reason.INVALID_ARGUMENT)
    await _refused(sso.resolve_sso_sign_in(db.factory(), school_id, "a\x00b"), Reason.INVALID_ARGUMENT)


async def test_an_archive_row_archives_then_a_later_row_restores_audited(
    db: FakeDatabase, hasher: AsyncPasswordHasher
) -> None:
    school_id = await _school(db)
    [made] = await _rows(
        db, school_id, "j1", IncomingRow(1, "ann", "ann@uni.example", "Ann", "Lee", "SSO-Ann")
    )
    db.passwords[made.user_id] = await hasher.hash(PASSWORD)
    assert (
        await authentication.authenticate(db.factory(), hasher, "ann@uni.example", PASSWORD)
    ).id == made.user_id

    [dry] = await _rows(
        db, school_id, "j2", IncomingRow(1, "ann", "ann@uni.example", status="archived"), dry_run=True
    )
    assert dry.outcome is RowOutcome.ARCHIVED and db.users[made.user_id].status is UserStatus.ACTIVE
    [archived] = await _rows(db, school_id, "j3", IncomingRow(1, "ann", "ann@uni.example", status="archived"))
    assert (archived.outcome, db.users[made.user_id].status) == (RowOutcome.ARCHIVED, UserStatus.ARCHIVED)
    assert db.audit[-1].action == "user.archived_by_file"
    assert db.audit[-1].details["status"] == ["ACTIVE", "ARCHIVED"]

    await _refused(
        authentication.authenticate(db.factory(), hasher, "ann@uni.example", PASSWORD),
        Reason.INVALID_CREDENTIALS,
    )
    await _refused(sso.resolve_sso_sign_in(db.factory(), school_id, "sso-ann"), Reason.USER_ARCHIVED)
    await _refused(
        accounts.sign_up_student(
            db.factory(),
            hasher,
            PLATFORM,
            school_id=school_id,
            email="ANN@uni.example",
            first_name="A",
            last_name="L",
            password=PASSWORD,
            request_id="",
        ),
        Reason.EMAIL_TAKEN,
    )
    page = await search.search_users(
        db.factory(),
        ADMIN,
        school_id=school_id,
        query="",
        user_types=[],
        statuses=[UserStatus.ARCHIVED],
        page_size=10,
        page_token="",
    )
    assert [u.id for u in page.items] == [made.user_id]

    [restored] = await _rows(db, school_id, "j4", IncomingRow(1, "ann", "ann@uni.example"))
    assert (restored.outcome, restored.message) == (RowOutcome.UPDATED, "unarchived")
    assert db.users[made.user_id].status is UserStatus.ACTIVE
    assert db.audit[-1].details["status"] == ["ARCHIVED", "ACTIVE"] and db.audit[-1].details["unarchived"]
    assert (
        await authentication.authenticate(db.factory(), hasher, "ann@uni.example", PASSWORD)
    ).id == made.user_id


async def test_archive_rows_skip_file_updates_off_and_never_touch_staff(db: FakeDatabase) -> None:
    school_id = await _school(db)
    [made] = await _rows(db, school_id, "j1", IncomingRow(1, "ann", "ann@uni.example"))
    db.users[made.user_id] = replace(db.users[made.user_id], file_updates_disabled=True)
    await accounts.create_user(
        db.factory(),
        ADMIN,
        user_type=UserType.STAFF,
        school_id=school_id,
        email="boss@uni.example",
        username="",
        first_name="B",
        last_name="S",
        auth_identifier="",
        request_id="",
    )
    results = await _rows(
        db,
        school_id,
        "j2",
        IncomingRow(1, "ann", "ann@uni.example", status="archived"),
        IncomingRow(2, "boss", "boss@uni.example", status="archived"),
        IncomingRow(3, "ann", "ann@uni.example", status="gone"),
    )
    assert [(r.outcome, r.reason) for r in results] == [
        (RowOutcome.SKIPPED, RowReason.FILE_UPDATES_DISABLED),
        (RowOutcome.FAILED, RowReason.EMAIL_TAKEN),
        (RowOutcome.FAILED, RowReason.INVALID_ROW),
    ]
    assert {u.status for u in db.users.values()} == {UserStatus.ACTIVE}


async def test_auth_identifiers_are_unique_per_school_for_create_user_and_rows(db: FakeDatabase) -> None:
    school_id = await _school(db)
    await _rows(db, school_id, "j1", IncomingRow(1, "ann", "ann@uni.example", auth_identifier="S-1"))
    await _refused(
        accounts.create_user(
            db.factory(),
            ADMIN,
            user_type=UserType.STUDENT,
            school_id=school_id,
            email="bo@uni.example",
            username="",
            first_name="B",
            last_name="O",
            auth_identifier="s-1",
            request_id="",
        ),
        Reason.AUTH_IDENTIFIER_TAKEN,
    )
    [row] = await _rows(db, school_id, "j2", IncomingRow(1, "bo", "bo@uni.example", auth_identifier=" S-1"))
    assert (row.outcome, row.reason) == (RowOutcome.FAILED, RowReason.AUTH_IDENTIFIER_TAKEN)
    other = await _school(db)
    [elsewhere] = await _rows(
        db, other, "j3", IncomingRow(1, "bo", "bo@other.example", auth_identifier="S-1")
    )
    assert elsewhere.outcome is RowOutcome.CREATED, "unique per school only"
