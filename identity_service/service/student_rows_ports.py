"""What applying a batch of student-file rows needs from persistence: one store per transaction.

Every method is one statement (one round trip), whatever the number of rows. The PostgreSQL adapter
is ``adapters/postgres/student_rows.py``; unit tests may use an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from identity_service.domain.identity_keys import EmailIdentity
from identity_service.service.row_batch import AuditEntry, RowResult, StoredStudent, Student


class BatchConflict(Exception):
    """A concurrent writer got in the way: a username or email taken between read and write, a
    deadlock, a serialization failure, or another call recorded the same rows first. The transaction
    is rolled back; applying the whole batch again sees the new state."""


class BatchRefused(Exception):
    """The database refused the batch's writes for something they hold (a constraint, a value, a
    trigger), not because it is unreachable. Rolled back; applying the same rows again fails again,
    so the batch is split until the row that causes it is alone (``sqlstate`` says what it was)."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"the database refused the batch (SQLSTATE {sqlstate})")
        self.sqlstate = sqlstate


class StudentRowsStore(Protocol):
    async def school_exists(self, school_id: str) -> bool: ...

    async def recorded_outcomes(self, job_id: str, row_numbers: Sequence[int]) -> dict[int, RowResult]:
        """The outcomes already recorded for these rows of the job, by row number."""
        ...

    async def students_named(
        self,
        school_id: str,
        username_keys: Sequence[str],
        emails: Sequence[EmailIdentity],
        *,
        lock: bool,
    ) -> list[StoredStudent]:
        """Users of the school whose username key is in ``username_keys``, users of any school whose
        email key is one of ``emails``', and users whose address could be confused with one of them;
        with ``lock``, locked FOR UPDATE in id order (the same order in every call, so concurrent
        batches do not deadlock on them)."""
        ...

    async def record_outcomes(self, job_id: str, results: Sequence[RowResult]) -> None:
        """Keep the outcomes; raises BatchConflict when any of these rows was recorded meanwhile."""
        ...

    async def park_keys(self, user_ids: Sequence[str]) -> None:
        """Move the usernames and emails of these users aside, so the batch can hand keys around."""
        ...

    async def update_students(self, job_id: str, job_time: datetime, students: Sequence[Student]) -> None:
        """Write the students' current values and import marks; bump version when ``changed``."""
        ...

    async def insert_students(
        self, job_id: str, job_time: datetime, students: Sequence[Student], *, client: str
    ) -> None:
        """Insert new students (origin STUDENT_FILE) with their import marks, and a
        ``user.created_by_file`` audit event for each in the same statement."""
        ...

    async def append_audit(self, school_id: str, client: str, entries: Sequence[AuditEntry]) -> None: ...


StudentRowsStoreFactory = Callable[[], AbstractAsyncContextManager[StudentRowsStore]]
