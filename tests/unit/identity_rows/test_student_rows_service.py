"""apply_student_rows on an in-memory unit of work: result order, replay, dry run, retries."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from identity_service.domain.student_file import (
    ImportMode,
    IncomingRow,
    RowOutcome,
    RowReason,
    RowResult,
    StoredStudent,
)
from identity_service.service import student_file
from identity_service.service.ports import BatchConflict, BatchRefused
from identity_service.service.student_file import RowBatchRequest, apply_student_rows
from shared.errors import Reason, RollcallError

SCHOOL = "11111111-1111-1111-1111-111111111111"


class FakeStore:
    """Records the calls; ``conflicts`` makes that many transactions fail with BatchConflict."""

    def __init__(self, recorded: dict[int, RowResult] | None = None, conflicts: int = 0) -> None:
        self.recorded = recorded or {}
        self.conflicts = conflicts
        self.calls: list[str] = []
        self.locked: list[bool] = []

    async def get(self, school_id: str) -> object | None:  # uow.schools
        self.calls.append("school")
        return object() if school_id == SCHOOL else None

    async def recorded_outcomes(self, job_id: str, row_numbers: Sequence[int]) -> dict[int, RowResult]:
        self.calls.append("recorded")
        return {n: r for n, r in self.recorded.items() if n in row_numbers}

    async def students_named(self, *args: Any, lock: bool, **keys: Any) -> list[StoredStudent]:
        self.calls.append("named")
        self.locked.append(lock)
        return []

    async def record_outcomes(self, job_id: str, results: Sequence[RowResult]) -> None:
        self.calls.append("record")
        if self.conflicts:
            self.conflicts -= 1
            raise BatchConflict("taken meanwhile")

    async def insert_students(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append("insert")

    async def append_many(self, *args: Any) -> None:  # uow.audit
        self.calls.append("audit")

    def factory(self) -> Any:
        """A unit-of-work factory whose schools, student file and audit are this store."""

        @contextlib.asynccontextmanager
        async def open_uow(**_: bool) -> AsyncIterator[Any]:
            yield SimpleNamespace(schools=self, student_file=self, audit=self)

        return open_uow


def _request(rows: list[IncomingRow], dry_run: bool = False, school: str = SCHOOL) -> RowBatchRequest:
    return RowBatchRequest(school, "job", datetime.now(UTC), ImportMode.ONGOING_SYNC, False, dry_run, rows)


ROWS = [IncomingRow(3, "c", "c@u.edu"), IncomingRow(1, "", "bad"), IncomingRow(2, "b", "b@u.edu")]


async def test_one_result_per_row_in_request_order_with_few_calls() -> None:
    store = FakeStore()
    results = await apply_student_rows(store.factory(), _request(ROWS), "importer")
    assert [(r.row_number, r.outcome) for r in results] == [
        (3, RowOutcome.CREATED),
        (1, RowOutcome.FAILED),
        (2, RowOutcome.CREATED),
    ]
    assert results[1].reason is RowReason.INVALID_ROW
    assert store.calls == ["school", "recorded", "named", "record", "insert", "audit"]  # audit port, bulk
    assert store.locked == [True]


async def test_recorded_rows_are_returned_as_they_were() -> None:
    first = RowResult(3, RowOutcome.UNCHANGED, False, "u3", None, "no changes")
    store = FakeStore(recorded={3: first})
    results = await apply_student_rows(store.factory(), _request(ROWS[:1]), "importer")
    assert results == [first]
    assert store.calls == ["school", "recorded"]


async def test_a_dry_run_reads_without_locks_and_writes_nothing() -> None:
    store = FakeStore()
    results = await apply_student_rows(store.factory(), _request(ROWS, dry_run=True), "importer")
    assert [r.outcome for r in results] == [RowOutcome.CREATED, RowOutcome.FAILED, RowOutcome.CREATED]
    assert store.calls == ["school", "recorded", "named"] and store.locked == [False]


async def test_an_unknown_school_is_refused() -> None:
    with pytest.raises(RollcallError) as caught:
        await apply_student_rows(FakeStore().factory(), _request(ROWS, school="x"), "importer")
    assert caught.value.reason is Reason.SCHOOL_NOT_FOUND


async def test_conflicts_are_retried_then_the_rows_fail_alone_never_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(student_file, "RETRY_PAUSE_SECONDS", 0.0)
    store = FakeStore(conflicts=2)
    results = await apply_student_rows(store.factory(), _request(ROWS), "importer")
    assert len(results) == 3 and store.calls.count("record") == 3
    store = FakeStore(conflicts=10_000)  # every write conflicts, for ever
    results = await apply_student_rows(store.factory(), _request(ROWS), "importer")
    assert [r.row_number for r in results] == [3, 1, 2]
    assert [(r.outcome, r.reason) for r in results] == [(RowOutcome.FAILED, RowReason.IDENTITY_CONFLICT)] * 3
    assert results[0].message == student_file.CONFLICT_MESSAGE


class PoisonStore(FakeStore):
    """The database refuses any insert holding a username that starts with ``poison``."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    async def insert_students(self, job_id: str, job_time: Any, students: Any, **kwargs: Any) -> None:
        names = [s.holder.username for s in students]
        self.batches.append(names)
        if any(name.startswith("poison") for name in names):
            raise BatchRefused("P0001")


async def test_a_refused_batch_is_split_until_the_bad_row_fails_alone() -> None:
    rows = [IncomingRow(n, f"s{n}" if n != 6 else "poison6", f"s{n}@u.edu") for n in range(1, 9)]
    store = PoisonStore()
    results = await apply_student_rows(store.factory(), _request(rows), "importer")
    outcomes = {r.row_number: (r.outcome, r.reason) for r in results}
    assert outcomes.pop(6) == (RowOutcome.FAILED, RowReason.IDENTITY_CONFLICT)
    assert set(outcomes.values()) == {(RowOutcome.CREATED, None)}
    assert "SQLSTATE P0001" in results[5].message
    written = [names for names in store.batches if not any(n.startswith("poison") for n in names)]
    assert sorted(n for names in written for n in names) == sorted(f"s{n}" for n in range(1, 9) if n != 6)


async def test_a_row_number_beyond_what_outcomes_hold_is_refused_naming_it() -> None:
    with pytest.raises(RollcallError) as caught:
        await apply_student_rows(FakeStore().factory(), _request([IncomingRow(2**63, "a", "a@u.edu")]), "x")
    assert caught.value.reason is Reason.INVALID_ARGUMENT
    assert caught.value.violations[0].field == "rows[0].row_number"


async def test_repeated_row_numbers_are_refused_before_any_work() -> None:
    store = FakeStore()
    with pytest.raises(RollcallError) as caught:
        await apply_student_rows(store.factory(), _request([ROWS[0], ROWS[0]]), "importer")
    assert caught.value.reason is Reason.INVALID_ARGUMENT and store.calls == []
