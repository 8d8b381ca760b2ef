"""Issue 7, import side, through both services as processes: a row on which identity's own SQL fails
is isolated and FAILED while the rest of its job applies; a message without user_id and a message
with NUL text are dead-lettered with their reasons on the first delivery, creating nothing."""

from __future__ import annotations

from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import (
    DEAD_REASON,
    PROTOBUF,
    connector,
    dead_letters,
    email,
    header,
    new_campus,
    outcome_name,
    rows_message,
    student_row,
)
from tests.process_stack import ProcessStack, job_counts, unique

POISON_TRIGGER = """
CREATE OR REPLACE FUNCTION rctest_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.username LIKE 'poison%' THEN
        RAISE EXCEPTION 'rctest: poisoned username %', NEW.username;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER rctest_poison BEFORE INSERT OR UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION rctest_poison();
"""
DROP_TRIGGER = "DROP TRIGGER IF EXISTS rctest_poison ON users; DROP FUNCTION IF EXISTS rctest_poison();"


async def test_rows_identity_cannot_store_are_isolated_and_the_job_completes(stack: ProcessStack) -> None:
    campus = await new_campus(stack)
    tag = unique("p")
    rows = [student_row(n, f"{tag}-{n}", email(f"{tag}-{n}"), "Ann", f"Lee{n}") for n in range(1, 41)]
    for number in (7, 33):
        rows[number - 1].username = f"poison-{tag}-{number}"
    job = header(campus.id)
    async with stack.identity_db() as db:
        await db.execute(POISON_TRIGGER)
    try:
        async with connector(stack) as sis:
            await sis.rows(job, rows, per_message=20)
            await sis.end(job, len(rows))
        done = await stack.wait_job(job.job_id, timeout=90)
    finally:
        async with stack.identity_db() as db:
            await db.execute(DROP_TRIGGER)

    assert done.dead_lettered == 0
    assert job_counts(done)["created"] == 38 and job_counts(done)["failed"] == 2
    records = {r.row_number: r for r in await stack.row_results(job.job_id)}
    assert {n for n, r in records.items() if outcome_name(r.outcome) == "FAILED"} == {7, 33}
    for number in (7, 33):
        assert records[number].reason  # FAILED with a reason, and none of identity's internal text
        assert "rctest" not in records[number].message and "trigger" not in records[number].message
    assert len(await campus.users()) == 38 + 1  # the students, and the staff member


async def test_no_user_id_or_nul_text_is_dead_lettered_at_once_and_creates_nothing(
    stack: ProcessStack,
) -> None:
    campus = await new_campus(stack)
    anonymous_job, nul_job = header(campus.id), header(campus.id)
    nul_job.source_name = "nightly\x00feed"
    row = student_row(1, unique("u"), email("u"), "Ann", "Lee")
    async with connector(stack) as sis:
        with_nul = await sis.send(rows_message(nul_job, [row]))
        sis.user_id = None
        anonymous = await sis.raw(
            rows_message(anonymous_job, [row]).SerializeToString(),
            content_type=PROTOBUF,
            routing_key=f"rows.{campus.id}",
        )

    letters = await dead_letters(stack, {anonymous, with_nul})

    assert letters[anonymous].headers[DEAD_REASON] == "CONNECTOR_NOT_ALLOWED"
    assert letters[with_nul].headers[DEAD_REASON] == "INVALID_TEXT"
    assert all("x-death" not in letter.headers for letter in letters.values())
    for job_id in (anonymous_job.job_id, nul_job.job_id):
        assert await stack.get_job(job_id) is None
    assert await stack.metric("rollcall_import_dead_lettered_total") >= 2
    jobs = await stack.importer.ListImportJobs(
        pb.ListImportJobsRequest(school_id=campus.id), metadata=stack.admin_md, timeout=10
    )
    assert list(jobs.jobs) == []
