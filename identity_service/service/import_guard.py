"""GetImportGuard (issue 9): what a guarded import job is measured against.

The import service holds a guarded job whose changes or archives would exceed the school's
``change_threshold_percent`` of its students; it asks identity for both figures when it decides.
``school_students`` is the school's students of any status — the same count ArchiveStudentsNotInJob
answers (``uow.student_file.count_students``). A read: no transaction, nothing written or audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from identity_service.domain.fields import Violations
from identity_service.service.idempotency import read
from identity_service.service.inputs import required_id
from identity_service.service.ports import UnitOfWork, UnitOfWorkFactory
from shared.errors import Reason, not_found


@dataclass(frozen=True)
class ImportGuard:
    change_threshold_percent: int  # 0..100 (0: the guard is off)
    school_students: int


async def get_import_guard(new_uow: UnitOfWorkFactory, school_id: str) -> ImportGuard:
    """The school's threshold and student count; SCHOOL_NOT_FOUND, or INVALID_ARGUMENT naming
    ``school_id``."""
    found = Violations()
    wanted = required_id(school_id, "school_id", found)
    found.raise_if_any()

    async def query(uow: UnitOfWork) -> ImportGuard:
        school = await uow.schools.get(wanted)
        if school is None:
            raise not_found(Reason.SCHOOL_NOT_FOUND, "school")
        return ImportGuard(school.change_threshold_percent, await uow.student_file.count_students(wanted))

    return await read(new_uow, query)
