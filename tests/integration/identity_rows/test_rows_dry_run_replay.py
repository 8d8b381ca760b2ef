"""Dry runs change nothing; applying the same rows of a job again returns the first outcomes."""

from __future__ import annotations

from dataclasses import replace

from identity_service.domain.student_file import ImportMode, IncomingRow, RowOutcome
from tests.integration.identity_rows.rows_support import Campus, essence, row, unique


async def _mixed_rows(campus: Campus) -> list[IncomingRow]:
    """Rows with every kind of outcome, including a student created and then updated in the batch."""
    staff = campus.email()
    await campus.add_user("boss", staff, user_type="STAFF", origin="STAFF")
    pending = campus.email()
    await campus.add_user("pen", pending, status="PENDING")
    same = campus.email()
    await campus.add_user("same", same, first="Sam")
    locked = campus.email()
    await campus.add_user("locked", locked, file_updates_disabled=True)
    self_registered = campus.email()
    await campus.add_user(self_registered, self_registered)
    leaving = campus.email()
    await campus.add_user("leaving", leaving)
    new = campus.email()
    return [
        row(1, "new", new, "Nu"),
        row(2, "x", staff),
        row(3, "pen", pending, "Pen"),
        row(4, "same", same, "Sam"),
        row(5, "locked", locked, "L"),
        row(6, "sr", self_registered),
        row(7, "", "bad"),
        row(8, "new", new, "Newer"),
        replace(row(9, "leaving", leaving), status="archived"),
    ]


async def test_a_dry_run_returns_the_real_outcomes_and_writes_nothing(campus: Campus) -> None:
    rows = await _mixed_rows(campus)
    dry_job, real_job = unique("dry"), unique("real")
    before = await campus.snapshot([dry_job, real_job])
    dry = await campus.apply(rows, job_id=dry_job, dry_run=True, mode=ImportMode.MANUAL_FILE)
    assert await campus.snapshot([dry_job, real_job]) == before
    real = await campus.apply(rows, job_id=real_job, mode=ImportMode.MANUAL_FILE)
    assert essence(dry) == essence(real)
    assert [r.user_id for r in dry][1:7] == [r.user_id for r in real][1:7]
    assert {r.outcome for r in real} == set(RowOutcome) - {RowOutcome.DELETED}  # DELETED: undo only
    assert (dry[0].user_id, dry[7].user_id) == (dry[0].user_id, dry[0].user_id)  # one new student
    assert await campus.snapshot([real_job]) != before


async def test_the_same_rows_again_return_the_first_outcomes_and_change_nothing(campus: Campus) -> None:
    rows = await _mixed_rows(campus)
    job = unique("job")
    first = await campus.apply(rows, job_id=job)
    after_first = await campus.snapshot([job])
    again = await campus.apply(list(reversed(rows)), job_id=job)
    assert list(reversed(again)) == first
    assert await campus.snapshot([job]) == after_first
    assert len(after_first["outcomes"]) == len(rows)


async def test_a_partly_applied_batch_applies_only_the_new_rows(campus: Campus) -> None:
    job = unique("job")
    emails = [campus.email() for _ in range(4)]
    first = await campus.apply([row(n + 1, f"s{n}", emails[n], "A") for n in range(2)], job_id=job)
    changed = [row(n + 1, f"s{n}", emails[n], "B") for n in range(4)]
    results = await campus.apply(changed, job_id=job)
    assert results[:2] == first
    assert [r.outcome for r in results[2:]] == [RowOutcome.CREATED] * 2
    assert sorted(s["first_name"] for s in await campus.students()) == ["A", "A", "B", "B"]
