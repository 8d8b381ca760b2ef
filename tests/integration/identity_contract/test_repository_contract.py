"""One set of repository tests, run against the in-memory fakes and the PostgreSQL adapters (the
``uow`` fixture is parametrised), so the fakes the unit tests rely on cannot drift from the database."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from identity_service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from identity_service.domain.email_changes import EmailChangeState, NewEmailChange
from identity_service.domain.identity_keys import EmailIdentity
from identity_service.domain.mail import MailKind, OutgoingMail
from identity_service.domain.student_file import (
    FieldChange,
    Holder,
    ImportMark,
    RowOutcome,
    RowResult,
    Student,
)
from identity_service.domain.users import User, UserOrigin, UserStatus, UserType
from identity_service.service.models import NewAuditEvent, School, StoredResponse
from identity_service.service.ports import BatchConflict, SweptStudent, UndoClaim, UserSearch
from shared.errors import Reason, RollcallError
from tests.unit.identity_service.fakes import FakeDatabase

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pool(identity_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(identity_db_url, min_size=1, max_size=4)
    assert created is not None
    yield created
    await created.close()


@pytest.fixture(params=["fake", "postgres"])
def new_uow(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> Callable[..., Any]:
    if request.param == "fake":
        return FakeDatabase().factory()
    return functools.partial(PostgresUnitOfWork, pool)


def _user(school_id: str, email: str, **values: Any) -> User:
    base: dict[str, Any] = dict(
        id=str(uuid.uuid4()),
        user_type=UserType.STUDENT,
        status=UserStatus.ACTIVE,
        school_id=school_id,
        username=email.split("@")[0],
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
    return User(**(base | values))


async def _school(new_uow: Callable[..., Any]) -> str:
    school = School(str(uuid.uuid4()), "Northfield", ("uni.example",), False, T0)
    async with new_uow() as uow:
        assert await uow.schools.add(school) == (await uow.schools.get(school.id))
    return school.id


def _mail(user_id: str) -> OutgoingMail:
    return OutgoingMail(
        f"{uuid.uuid4().hex[:8]}@uni.example", "Hi", "Hello\n", MailKind.EMAIL_CHANGE_NOTICE, None, user_id
    )


async def test_schools_and_users(new_uow: Callable[..., Any]) -> None:
    school = await _school(new_uow)
    tag = uuid.uuid4().hex[:8]
    async with new_uow() as uow:
        ann = await uow.users.add(_user(school, f"ann.{tag}@uni.example"), "hash")
        assert ann.version == 1 and await uow.users.get(ann.id) == ann
        assert (await uow.users.by_email(f"ANN.{tag}@uni.example")) == ann
        assert await uow.users.credentials(f"ann.{tag}@uni.example") == (ann, "hash")
    # a refused write ends its unit of work (PostgreSQL aborts the transaction): one per attempt
    async with new_uow() as uow:
        with pytest.raises(RollcallError) as caught:
            await uow.users.add(_user(school, f"Ann.{tag}@Uni.example", username="other"), None)
        assert caught.value.reason is Reason.EMAIL_TAKEN
    async with new_uow() as uow:
        with pytest.raises(RollcallError) as caught:
            await uow.users.add(_user(school, f"bo.{tag}@uni.example", username=f"ANN.{tag}"), None)
        assert caught.value.reason is Reason.USERNAME_TAKEN
    async with new_uow() as uow:
        updated = await uow.users.set_status(ann.id, UserStatus.DECLINED)
        assert (updated.status, updated.version) == (UserStatus.DECLINED, 2)
        changed = await uow.users.change_email(ann.id, f"ann.{tag}@gmail.com", None)
        assert changed.email_verified and changed.version == 3
        found = await uow.users.search(UserSearch(school, "ann", [UserType.STUDENT], [], None, 10))
        assert [u.id for u in found] == [ann.id]
        await uow.users.delete(ann.id)
        assert await uow.users.get(ann.id) is None


async def test_a_failed_unit_of_work_leaves_nothing(new_uow: Callable[..., Any]) -> None:
    school = await _school(new_uow)
    ann = _user(school, f"{uuid.uuid4().hex[:8]}@uni.example")
    with pytest.raises(RuntimeError):
        async with new_uow() as uow:
            await uow.users.add(ann, None)
            raise RuntimeError("use case failed")
    async with new_uow(read_only=True) as uow:
        assert await uow.users.get(ann.id) is None


async def test_audit_appends_in_order_and_lists_newest_first(new_uow: Callable[..., Any]) -> None:
    school = await _school(new_uow)
    events = [
        NewAuditEvent(None, "test", f"a{n}", None, school, {"n": n, "f": [None, "x"]}) for n in range(3)
    ]
    async with new_uow() as uow:
        await uow.audit.append(events[0])
        await uow.audit.append_many(events[1:])
        listed = await uow.audit.list(school, None, None, 10)
    assert [(e.action, dict(e.details)) for e in listed] == [
        ("a2", {"n": 2, "f": [None, "x"]}),
        ("a1", {"n": 1, "f": [None, "x"]}),
        ("a0", {"n": 0, "f": [None, "x"]}),
    ]
    async with new_uow() as uow:
        assert [e.action for e in await uow.audit.list(school, None, listed[0].id, 10)] == ["a1", "a0"]


async def test_idempotency_keeps_the_first_answer(new_uow: Callable[..., Any]) -> None:
    key = ("client", "", uuid.uuid4().hex)
    first, second = StoredResponse("Rpc", b"f" * 32, b"one"), StoredResponse("Rpc", b"g" * 32, b"two")
    async with new_uow() as uow:
        await uow.idempotency.lock(*key)
        assert await uow.idempotency.find(*key, b"f" * 32) is None
        await uow.idempotency.save(*key, first)
        await uow.idempotency.save(*key, second)
        assert await uow.idempotency.find(*key, b"f" * 32) == first


async def test_email_changes(new_uow: Callable[..., Any]) -> None:
    school = await _school(new_uow)
    async with new_uow() as uow:
        ann = await uow.users.add(_user(school, f"{uuid.uuid4().hex[:8]}@uni.example"), None)
        opened = await uow.email_changes.open(
            NewEmailChange(str(uuid.uuid4()), ann.id, "ANN@gmail.com", T0 + timedelta(days=9999))
        )
        assert opened.state is EmailChangeState.PENDING and opened.new_email_key == "ann@gmail.com"
        assert await uow.email_changes.pending(ann.id, for_update=True) == opened
        assert await uow.email_changes.issue_code(opened.id, "hash") is True
        counted = await uow.email_changes.count_attempt(opened.id)
        assert counted is not None and (counted.attempts, counted.max_attempts) == (1, 5)
        closed = await uow.email_changes.close_pending(ann.id, EmailChangeState.CANCELLED)
        assert closed is not None and closed.state is EmailChangeState.CANCELLED and closed.close_time
        assert await uow.email_changes.pending(ann.id) is None
        assert await uow.email_changes.set_state(opened.id, EmailChangeState.LOCKED) is False
        assert await uow.email_changes.issue_code(opened.id, "hash") is False
        latest = await uow.email_changes.latest(ann.id)
        assert latest is not None and latest.id == opened.id
        with pytest.raises(ValueError):
            await uow.email_changes.close_pending(ann.id, EmailChangeState.PENDING)


async def test_outbox_claims_leases_and_settles(new_uow: Callable[..., Any]) -> None:
    user_id = str(uuid.uuid4())
    async with new_uow() as uow:
        first = await uow.outbox.enqueue(_mail(user_id))
        second = await uow.outbox.enqueue(_mail(user_id))
        mine = [m for m in await uow.outbox.claim_due(1000, 30) if m.user_id == user_id]
        assert [m.id for m in mine] == [first, second] and mine[0].attempts == 0
        assert [m for m in await uow.outbox.claim_due(1000, 30) if m.user_id == user_id] == []
        await uow.outbox.release([second])
        await uow.outbox.mark_sent(first)
        await uow.outbox.mark_failed(second, "OSError", T0, False)
        again = [m for m in await uow.outbox.claim_due(1000, 30) if m.user_id == user_id]
        assert [(m.id, m.attempts) for m in again] == [(second, 1)]
        await uow.outbox.abandon(second, "gone")
        assert await uow.outbox.discard_pending(user_id, MailKind.EMAIL_CHANGE_NOTICE) == 0


async def test_rate_limits(new_uow: Callable[..., Any]) -> None:
    subject = ("contract", uuid.uuid4().hex)
    async with new_uow() as uow:
        assert [await uow.rate_limits.hit(*subject, timedelta(hours=1), 2) for _ in range(3)] == [
            True,
            True,
            False,
        ]
        await uow.rate_limits.clear(*subject)
        assert await uow.rate_limits.hit(*subject, timedelta(hours=1), 1) is True


async def test_student_file(new_uow: Callable[..., Any]) -> None:
    school, job = await _school(new_uow), uuid.uuid4().hex
    email = f"{uuid.uuid4().hex[:8]}@uni.example"
    holder = Holder(
        str(uuid.uuid4()), UserType.STUDENT, school, UserStatus.ACTIVE, "s1", email, "Ann", "Lee", "", False
    )
    new = Student(
        holder, ImportMark(T0, job, 7), EmailIdentity.of(email), is_new=True, changed=True, marked=True
    )
    result = RowResult(7, RowOutcome.CREATED, False, holder.id, None, "student created")
    async with new_uow(batch=True) as uow:
        await uow.student_file.record_outcomes(job, [result])
        await uow.student_file.insert_students(job, T0, [new])
    async with new_uow(batch=True) as uow:
        assert await uow.student_file.recorded_outcomes(job, [7, 8]) == {7: result}
        [found] = await uow.student_file.students_named(school, ["s1"], [EmailIdentity.of(email)], lock=True)
        assert (found.holder, found.mark, found.username_key) == (holder, ImportMark(T0, job, 7), "s1")
        user = await uow.users.get(holder.id)
        assert user is not None and user.origin is UserOrigin.STUDENT_FILE
    with pytest.raises(BatchConflict):
        async with new_uow(batch=True) as uow:
            await uow.student_file.record_outcomes(job, [result])


async def test_school_settings_are_stored_and_updated(new_uow: Callable[..., Any]) -> None:
    school = School(str(uuid.uuid4()), "Northfield", ("uni.example",), False, T0, 0, ("office@uni.example",))
    async with new_uow() as uow:
        added = await uow.schools.add(school)
        assert (added.change_threshold_percent, added.notify_emails) == (0, ("office@uni.example",))
    changed = School(school.id, "North", ("uni.example", "alumni.example"), True, T0, 35, ())
    async with new_uow() as uow:
        locked = await uow.schools.get(school.id, for_update=True)
        assert locked is not None
        updated = await uow.schools.update(changed)
        assert updated.create_time == added.create_time  # never changed by an update
        assert (updated.name, updated.email_domains, updated.sso_enabled) == (
            "North",
            ("uni.example", "alumni.example"),
            True,
        )
        assert (updated.change_threshold_percent, updated.notify_emails) == (35, ())
        assert await uow.schools.get(school.id) == updated
    async with new_uow() as uow:
        with pytest.raises(RollcallError) as caught:
            await uow.schools.update(School(str(uuid.uuid4()), "Gone", (), False, T0))
        assert caught.value.reason is Reason.SCHOOL_NOT_FOUND


async def test_users_read_and_decided_as_a_set(new_uow: Callable[..., Any]) -> None:
    school = await _school(new_uow)
    tag = uuid.uuid4().hex[:8]
    async with new_uow() as uow:
        made = [
            await uow.users.add(_user(school, f"s{i}.{tag}@uni.example", status=UserStatus.PENDING), None)
            for i in range(3)
        ]
    ids = [u.id for u in made]
    unknown = str(uuid.uuid4())
    async with new_uow() as uow:
        found = await uow.users.get_many([ids[2], unknown, ids[0]], for_update=True)
        assert found == {ids[0]: made[0], ids[2]: made[2]}
        assert await uow.users.set_status_many([], UserStatus.ACTIVE) == {}
        decided = await uow.users.set_status_many([ids[0], ids[2]], UserStatus.ACTIVE)
        assert set(decided) == {ids[0], ids[2]}
        assert all(u.status is UserStatus.ACTIVE and u.version == 2 for u in decided.values())
    async with new_uow() as uow:
        after = await uow.users.get_many(ids)
        assert [after[i].status for i in ids] == [UserStatus.ACTIVE, UserStatus.PENDING, UserStatus.ACTIVE]


async def test_job_undos_claims_changes_versions_and_deletes(new_uow: Callable[..., Any]) -> None:
    """Undo's repository: a job is claimed once (the same undo job repeats, another is refused, an
    undo is never undone); the job's changes come back with the version after the row's batch; the
    students with their versions; created students deleted; the undo job's outcomes replayed."""
    school, job, undo_job = await _school(new_uow), uuid.uuid4().hex, uuid.uuid4().hex
    email = f"{uuid.uuid4().hex[:8]}@uni.example"
    holder = Holder(
        str(uuid.uuid4()), UserType.STUDENT, school, UserStatus.ACTIVE, "s1", email, "Ann", "Lee", "", False
    )
    new = Student(
        holder, ImportMark(T0, job, 7), EmailIdentity.of(email), is_new=True, changed=True, marked=True
    )
    created = RowResult(
        7, RowOutcome.CREATED, False, holder.id, None, "created", (FieldChange("username", "", "s1"),)
    )
    async with new_uow(batch=True) as uow:
        await uow.student_file.record_outcomes(
            job, [created, RowResult(8, RowOutcome.FAILED, False, None, None, "")]
        )
        await uow.student_file.insert_students(job, T0, [new])
    after = dataclasses.replace(holder, username="s2")
    renamed = Student(after, ImportMark(T0, job, 9), EmailIdentity.of(email), changed=True)
    updated = RowResult(
        9, RowOutcome.UPDATED, False, holder.id, None, "", (FieldChange("username", "s1", "s2"),)
    )
    async with new_uow(batch=True) as uow:
        await uow.student_file.record_outcomes(job, [updated])
        await uow.student_file.update_students(job, T0, [renamed])
    async with new_uow(batch=True) as uow:
        changes = await uow.undos.job_changes(job)
        assert [(c.row_number, c.outcome, c.user_id, c.changes, c.user_version) for c in changes] == [
            (7, RowOutcome.CREATED, holder.id, created.changes, 1),
            (9, RowOutcome.UPDATED, holder.id, updated.changes, 2),
        ]
        [(stored, version)] = await uow.undos.students([holder.id, str(uuid.uuid4())])
        assert (stored.holder.username, version) == ("s2", 2)
        assert await uow.undos.claim(job, undo_job) is UndoClaim.CLAIMED
        deleted = RowResult(1, RowOutcome.DELETED, False, holder.id, None, "deleted")
        await uow.student_file.record_outcomes(undo_job, [deleted])
        await uow.undos.delete_students([holder.id])
    async with new_uow(batch=True) as uow:
        assert await uow.undos.claim(job, undo_job) is UndoClaim.REPEATED
        assert await uow.undos.claim(job, uuid.uuid4().hex) is UndoClaim.REFUSED
        assert await uow.undos.claim(undo_job, uuid.uuid4().hex) is UndoClaim.REFUSED
        assert await uow.undos.replay(undo_job) == [deleted]
        assert await uow.undos.students([holder.id]) == []
        assert await uow.users.get(holder.id) is None


async def test_roster_sweep_candidates_claims_and_archives(new_uow: Callable[..., Any]) -> None:
    school, job = await _school(new_uow), uuid.uuid4().hex
    tag = uuid.uuid4().hex[:8]

    def student(name: str, **values: Any) -> User:
        return _user(school, f"{name}.{tag}@uni.example", origin=UserOrigin.STUDENT_FILE, **values)

    named, left, off = student("named"), student("left"), student("off", file_updates_disabled=True)
    waiting, typed = student("waiting", status=UserStatus.PENDING), _user(school, f"typed.{tag}@uni.example")
    async with new_uow() as uow:
        for user in (named, left, off, waiting, typed):
            await uow.users.add(user, None)
    async with new_uow(batch=True) as uow:
        await uow.student_file.record_outcomes(
            job, [RowResult(1, RowOutcome.UNCHANGED, False, named.id, None, "")]
        )
    async with new_uow() as uow:
        assert [u.id for u in await uow.student_file.not_named(school, job, lock=True)] == [left.id]
        assert await uow.student_file.count_students(school) == 5
        assert await uow.student_file.swept(job) == []
        assert await uow.student_file.claim_sweep(school, job)
        await uow.student_file.record_swept(job, [SweptStudent(left.id, left.username, left.email, T0)])
    async with new_uow() as uow:
        assert not await uow.student_file.claim_sweep(school, job)
        assert await uow.student_file.swept(job) == [SweptStudent(left.id, left.username, left.email, T0)]


async def test_roster_previews_count_as_named_only_when_asked_and_are_cleared_per_job(
    new_uow: Callable[..., Any],
) -> None:
    """A dry run's roster preview (first row wins), read by ``not_named(previews=True)`` only,
    cleared for its job alone; the sweep's archives keep the version, which undo reads back."""
    school, job, other = await _school(new_uow), uuid.uuid4().hex, uuid.uuid4().hex
    tag = uuid.uuid4().hex[:8]
    ann, bob, cy = (
        _user(school, f"{n}.{tag}@uni.example", origin=UserOrigin.STUDENT_FILE) for n in ("ann", "bob", "cy")
    )
    async with new_uow() as uow:
        for user in (ann, bob, cy):
            await uow.users.add(user, None)
    async with new_uow(batch=True) as uow:
        await uow.student_file.record_roster_preview(job, [(1, ann.id), (2, bob.id)])
        await uow.student_file.record_roster_preview(job, [(2, cy.id)])  # row 2 keeps bob
        await uow.student_file.record_roster_preview(other, [(1, cy.id)])
    async with new_uow() as uow:
        everyone = sorted([ann.id, bob.id, cy.id])
        assert [u.id for u in await uow.student_file.not_named(school, job, lock=False)] == everyone
        previewed = await uow.student_file.not_named(school, job, lock=False, previews=True)
        assert [u.id for u in previewed] == [cy.id]
        await uow.student_file.clear_roster_preview(job)
    async with new_uow() as uow:
        assert [
            u.id for u in await uow.student_file.not_named(school, job, lock=True, previews=True)
        ] == everyone
        others = await uow.student_file.not_named(school, other, lock=False, previews=True)
        assert [u.id for u in others] == sorted([ann.id, bob.id])
        assert await uow.student_file.claim_sweep(school, job)
        archived = [
            SweptStudent(cy.id, cy.username, cy.email, T0, 7),
            SweptStudent(bob.id, None, bob.email, T0),
        ]
        await uow.student_file.record_swept(job, archived)
    async with new_uow(batch=True) as uow:
        assert await uow.student_file.swept(job) == sorted(archived, key=lambda s: s.user_id)
        by_id = {a.user_id: a.user_version for a in await uow.undos.job_sweep(job)}
        assert by_id == {cy.id: 7, bob.id: None}
        assert [a.user_id for a in await uow.undos.job_sweep(job)] == sorted(by_id)
        assert await uow.undos.job_sweep(other) == []
