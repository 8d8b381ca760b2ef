"""F9 (operations.md): poison rows — rows whose content makes identity's SQL fail in ways nobody
planned for — mixed into four schools' jobs at once, while a fifth school's clean job runs beside
them. Each poison row ends FAILED with a reason, every other row of every job is applied, and no job
stalls: neither identity (which isolates the row) nor the import service waits for an "outage".

The poison is a trigger the test installs on identity's users table: it raises a plain exception
(P0001) for first name ``Poison`` and a check violation (23514) for ``Check``. Beside them, the rows
that used to stall every school: upper-case dotted-I spellings of existing students' addresses.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import Campus, connector, header, new_campus, outcome_name, student_row
from tests.process_stack import ProcessStack

pytestmark = pytest.mark.faults

POISON_TRIGGER = """
CREATE OR REPLACE FUNCTION f9_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.first_name = 'Poison' THEN
        RAISE EXCEPTION 'poison row' USING ERRCODE = 'P0001';
    ELSIF NEW.first_name = 'Check' THEN
        RAISE EXCEPTION 'check row' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER f9_poison BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION f9_poison();
"""
ROWS_PER_JOB = 600


async def _file(campus: Campus, poisoned: bool) -> tuple[list[rows_pb.StudentRow], dict[int, str]]:
    """Rows for one school, and the outcome each must end with."""
    tag = uuid.uuid4().hex[:6]
    rows, expected = [], {}
    for n in range(1, ROWS_PER_JOB + 1):
        first = "Ann"
        if poisoned and n % 97 == 0:
            first = "Poison"
        elif poisoned and n % 101 == 0:
            first = "Check"
        rows.append(student_row(n, f"s{n}-{tag}", f"s{n}-{tag}@uni.example", first, "Lee"))
        expected[n] = "FAILED" if first in ("Poison", "Check") else "CREATED"
    if poisoned:
        for n in (ROWS_PER_JOB + 1, ROWS_PER_JOB + 2):  # the dotted-I rows of existing students
            local = f"inan{n}-{tag}"
            await campus.student(local, f"{local}@uni.example", first="Inan", last="Lee")
            spelt = local.upper().replace("I", "İ")
            rows.append(student_row(n, spelt, f"{spelt}@uni.example", "Inan", "Lee"))
            expected[n] = "UNCHANGED"
    return rows, expected


async def test_f9_poison_rows_in_four_schools_fail_alone_and_no_job_stalls(fault_stack: ProcessStack) -> None:
    stack = fault_stack
    async with stack.identity_db() as db:
        await db.execute(POISON_TRIGGER)
    campuses = [await new_campus(stack, f"Poisoned {n}") for n in range(4)] + [
        await new_campus(stack, "Clean")
    ]
    files = [await _file(campus, poisoned=index < 4) for index, campus in enumerate(campuses)]
    jobs = [header(campus.id) for campus in campuses]

    async with connector(stack) as publisher:
        for offset in range(0, ROWS_PER_JOB + 2, 50):  # the five files interleaved, as five connectors
            for job, (rows, _) in zip(jobs, files, strict=True):
                if offset < len(rows):
                    await publisher.rows(job, rows[offset : offset + 50], per_message=50)
        for job, (rows, _) in zip(jobs, files, strict=True):
            await publisher.end(job, len(rows))

    done = await asyncio.gather(*(stack.wait_job(job.job_id, timeout=240) for job in jobs))
    for job, finished, (_, expected) in zip(jobs, done, files, strict=True):
        results = await stack.row_results(job.job_id)
        got = {r.row_number: outcome_name(r.outcome) for r in results}
        assert got == expected, f"job {job.job_id}: {sorted(set(got.items()) ^ set(expected.items()))[:10]}"
        failed = [r for r in results if r.outcome == rows_pb.ROW_OUTCOME_FAILED]
        assert all(r.reason == "IDENTITY_CONFLICT" and "SQLSTATE" in r.message for r in failed)
        assert finished.state == pb.IMPORT_JOB_STATE_COMPLETED and finished.dead_lettered == 0
    async with stack.identity_db() as db:
        assert await db.fetchval("SELECT count(*) FROM users WHERE first_name IN ('Poison', 'Check')") == 0
    poisoned_rows = sum(1 for _, expected in files for o in expected.values() if o == "FAILED")
    print(
        f"F9: 5 jobs, {sum(len(r) for r, _ in files)} rows, {poisoned_rows} poison rows failed alone, 0 lost"
    )
