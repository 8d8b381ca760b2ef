"""The higher row of a job and the later job win, however batches arrive; concurrent batches are safe."""

from __future__ import annotations

import asyncio
import json

from identity_service.domain.student_file import ImportMode, RowOutcome, RowReason
from tests.integration.identity_rows.rows_support import Campus, later, row, unique


async def test_rows_of_one_student_in_reverse_batches_end_with_the_highest_row(campus: Campus) -> None:
    job, email = unique("job"), campus.email()
    outcomes = []
    for number in range(6, 0, -1):
        [result] = await campus.apply([row(number, "ann", email, f"Name{number}")], job_id=job)
        outcomes.append((result.outcome, result.reason))
    assert outcomes == [(RowOutcome.CREATED, None)] + [(RowOutcome.SKIPPED, RowReason.SUPERSEDED)] * 5
    [student] = await campus.students()
    assert (student["first_name"], student["last_import_row"], student["version"]) == ("Name6", 6, 1)


async def test_a_lower_unchanged_row_cannot_undo_a_higher_one(campus: Campus) -> None:
    job, email = unique("job"), campus.email()
    await campus.add_user("ann", email, first="Old")
    [nine] = await campus.apply([row(9, "ann", email, "Old")], job_id=job)
    [five] = await campus.apply([row(5, "ann", email, "Five")], job_id=job)
    assert (nine.outcome, five.reason) == (RowOutcome.UNCHANGED, RowReason.SUPERSEDED)
    [student] = await campus.students()
    assert (student["first_name"], student["version"], student["last_import_row"]) == ("Old", 1, 9)


async def test_a_later_job_wins_over_an_earlier_job_applied_afterwards(campus: Campus) -> None:
    email = campus.email()
    await campus.apply([row(1, "ann", email, "Later")], job_id=unique("b"), job_time=later(2))
    [earlier] = await campus.apply([row(50, "ann", email, "Earlier")], job_id=unique("a"), job_time=later(1))
    assert (earlier.outcome, earlier.reason) == (RowOutcome.SKIPPED, RowReason.SUPERSEDED)
    [newest] = await campus.apply([row(1, "ann", email, "Newest")], job_id=unique("c"), job_time=later(3))
    assert newest.outcome is RowOutcome.UPDATED
    assert [s["first_name"] for s in await campus.students()] == ["Newest"]


async def test_within_one_batch_the_higher_row_wins_and_sees_earlier_rows(campus: Campus) -> None:
    email = campus.email()
    results = await campus.apply([row(9, "ann", email, "Nine"), row(5, "ann", email, "Five", "Lee")])
    assert [r.outcome for r in results] == [RowOutcome.UPDATED, RowOutcome.CREATED]
    assert results[0].user_id == results[1].user_id
    [student] = await campus.students()
    assert (student["first_name"], student["last_name"], student["last_import_row"]) == ("Nine", "Lee", 9)
    events = [(e["action"], json.loads(e["details"])) for e in await campus.audit()]
    assert [action for action, _ in events] == ["user.created_by_file", "user.updated_by_file"]
    assert events[1][1]["first_name"] == ["Five", "Nine"] and events[1][1]["row_number"] == 9


async def test_concurrent_batches_creating_the_same_students_make_each_once(campus: Campus) -> None:
    emails = [campus.email() for _ in range(300)]
    batches = [
        [row(n + 1, f"s{n}", emails[n], f"J{job}") for n in range(300)][:: 1 if job == 0 else -1]
        for job in range(3)
    ]
    jobs = [unique("j") for _ in batches]
    results = await asyncio.gather(*(campus.apply(b, job_id=j) for b, j in zip(batches, jobs, strict=True)))
    students = await campus.students()
    assert len(students) == 300 and len({s["username"] for s in students}) == 300
    created = sum(r.outcome is RowOutcome.CREATED for batch in results for r in batch)
    assert created == 300
    assert all(r.outcome is not RowOutcome.FAILED for batch in results for r in batch)


async def test_the_same_rows_applied_twice_at_once_are_applied_once(campus: Campus) -> None:
    job = unique("job")
    rows = [row(n + 1, f"s{n}", campus.email(), "A") for n in range(200)]
    first, second = await asyncio.gather(campus.apply(rows, job_id=job), campus.apply(rows, job_id=job))
    assert first == second
    assert len(await campus.students()) == 200 and len(await campus.audit()) == 200


async def test_emails_handed_from_one_student_to_another_in_one_batch(campus: Campus) -> None:
    x, y, z = campus.email(), campus.email(), campus.email()
    ann = await campus.add_user("ann", x)
    bob = await campus.add_user("bob", y)
    results = await campus.apply(
        [row(2, "bob", x), row(1, "ann", z), row(3, "cy", y)], mode=ImportMode.MANUAL_FILE, sensitive=True
    )
    assert [r.outcome for r in results] == [RowOutcome.UPDATED, RowOutcome.UPDATED, RowOutcome.CREATED]
    assert ((await campus.user(ann))["email"], (await campus.user(bob))["email"]) == (z, x)
    assert {s["email"] for s in await campus.students()} == {x, y, z}
