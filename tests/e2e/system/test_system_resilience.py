"""What the import service survives without losing a row: identity restarting in the middle of a job,
and messages it cannot read (they go to the dead-letter queue with the reason, the job shows them)."""

from __future__ import annotations

import signal

from shared.proto.rollcall.identity.v1 import student_rows_pb2 as rows_pb
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import (
    DEAD_REASON,
    JSON,
    PROTOBUF,
    connector,
    dead_letters,
    email,
    end_message,
    header,
    new_campus,
    outcome_name,
    rows_message,
    student_row,
)
from tests.process_stack import IDENTITY, IMPORT, SERVING, ProcessStack, eventually, job_counts

RETRIES = "rollcall_import_identity_retries_total"


async def test_an_identity_restart_in_the_middle_of_a_job_fails_no_row(stack: ProcessStack) -> None:
    campus = await new_campus(stack)
    job = header(campus.id)
    rows = [student_row(n, f"rs{n}", email(f"rs{n}"), "Re", f"Start{n}") for n in range(1, 2001)]
    async with connector(stack) as sis:
        await sis.rows(job, rows[:1000], per_message=100)

        async def some_applied() -> bool:
            found = await stack.get_job(job.job_id)
            return found is not None and found.rows_received >= 200

        await eventually(some_applied, what="the first rows applied")
        retries = await stack.metric(RETRIES)
        assert await stack.stop(IDENTITY, signal.SIGTERM) == 0  # a graceful stop, as in a rollout
        await sis.rows(job, rows[1000:], per_message=100)
        await sis.end(job, len(rows))

        async def waiting_for_identity() -> bool:
            return await stack.metric(RETRIES) > retries

        await eventually(waiting_for_identity, what="rows waiting for identity")
        during = await stack.get_job(job.job_id)
        assert during is not None and during.state == pb.IMPORT_JOB_STATE_RECEIVING
        assert during.counts.failed == 0
        await stack.start(IDENTITY)

    done = await stack.wait_job(job.job_id)
    assert (done.total_rows, done.rows_received) == (2000, 2000)
    assert job_counts(done) == {
        "created": 2000,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "approved": 0,
    }
    records = await stack.row_results(job.job_id)
    assert [r.row_number for r in records] == list(range(1, 2001))
    assert {outcome_name(r.outcome) for r in records} == {"CREATED"}
    assert len({r.user_id for r in records}) == 2000


async def test_messages_that_cannot_be_read_land_in_the_dead_letter_queue_with_reasons(
    stack: ProcessStack,
) -> None:
    campus = await new_campus(stack)
    job = header(campus.id)
    routing = f"rows.{campus.id}"
    valid = rows_message(job, [student_row(n, f"dl{n}", email(f"dl{n}")) for n in range(1, 6)])
    async with connector(stack) as sis:
        await sis.send(valid)
        sent = {
            "UNDECODABLE": await sis.raw(b"\xff\x00garbage", content_type=PROTOBUF, routing_key=routing),
            "UNDECODABLE_TRUNCATED": await sis.raw(
                valid.SerializeToString()[:-7], content_type=PROTOBUF, routing_key=routing
            ),
            "UNDECODABLE_JSON": await sis.raw(b'{"jobId": [1,', content_type=JSON, routing_key=routing),
            "UNKNOWN_CONTENT_TYPE": await sis.raw(
                valid.SerializeToString(), content_type="text/csv", routing_key=routing
            ),
            "UNKNOWN_CONTENT_TYPE_NONE": await sis.raw(
                valid.SerializeToString(), content_type=None, routing_key=routing
            ),
            # off-contract, but the job can be read: these count on the job
            "SCHOOL_MISMATCH": await sis.send(
                rows_message(job, [student_row(6, "x6", email("x6"))]), routing_school="another-school"
            ),
            "INVALID_ROW_NUMBER": await sis.send(rows_message(job, [student_row(0, "x0", email("x0"))])),
            "TOO_MANY_ROWS": await sis.send(
                rows_message(job, [student_row(n, f"m{n}", email(f"m{n}")) for n in range(10, 1011)])
            ),
            "JOB_MISMATCH": await sis.send(
                rows_message(
                    header(campus.id, job_id=job.job_id, mode=rows_pb.IMPORT_MODE_MANUAL_FILE),
                    [student_row(7, "x7", email("x7"))],
                )
            ),
        }
        await sis.send(end_message(job, 5))

    letters = await dead_letters(stack, set(sent.values()))
    for label, message_id in sent.items():
        reason = label.removesuffix("_NONE").removesuffix("_JSON").removesuffix("_TRUNCATED")
        headers = letters[message_id].headers
        assert headers[DEAD_REASON] == reason, (label, headers)
        assert headers["x-rollcall-dead-detail"], label
        assert headers["x-rollcall-routing-key"] == (
            "rows.another-school" if reason == "SCHOOL_MISMATCH" else routing
        )
        assert letters[message_id].body == next(s.body for s in sis.sent if s.message_id == message_id)

    # the refusals that name the job and were routed to its school are counted on it (three: the
    # SCHOOL_MISMATCH one went to another school's routing key, and a job counts only its school's)
    done = await stack.wait_job(
        job.job_id, until=lambda j: j.state == pb.IMPORT_JOB_STATE_COMPLETED and j.dead_lettered >= 3
    )
    assert (done.rows_received, done.total_rows, done.counts.created) == (5, 5, 5)  # no refused row applied
    assert done.dead_lettered == 3
    assert (await stack.health(IDENTITY), await stack.health(IMPORT)) == (SERVING, SERVING)


async def test_an_undecodable_message_whose_job_can_be_read_is_shown_on_that_job(stack: ProcessStack) -> None:
    """product.md: "A message that cannot be decoded goes to the dead-letter queue with the reason,
    and the job shows it." A JSON body whose ``jobId`` is plainly readable but which does not decode
    as an ImportMessage (an unknown field, a row number that is not a number) names its job."""
    campus = await new_campus(stack)
    job = header(campus.id)
    routing = f"rows.{campus.id}"
    async with connector(stack) as sis:
        await sis.send(rows_message(job, [student_row(1, "j1", email("j1"))]))
        unknown_field = (
            b'{"jobId": "%s", "schoolId": "%s", "mode": "IMPORT_MODE_ONGOING_SYNC", "surprise": 1}'
            % (job.job_id.encode(), campus.id.encode())
        )
        bad_number = (
            b'{"jobId": "%s", "schoolId": "%s", "mode": "IMPORT_MODE_ONGOING_SYNC",'
            b' "rows": {"rows": [{"rowNumber": "two", "username": "j2"}]}}'
            % (job.job_id.encode(), campus.id.encode())
        )
        ids = {
            await sis.raw(unknown_field, content_type=JSON, routing_key=routing),
            await sis.raw(bad_number, content_type=JSON, routing_key=routing),
        }
        await sis.send(end_message(job, 1))
    letters = await dead_letters(stack, ids)
    assert {letters[i].headers[DEAD_REASON] for i in ids} == {"UNDECODABLE"}
    done = await stack.wait_job(job.job_id)
    assert done.rows_received == 1
    done = await stack.wait_job(
        job.job_id, timeout=5, until=lambda j: j.dead_lettered >= 2, what="2 dead letters counted on the job"
    )
    assert done.dead_lettered == 2, "the job does not show the undecodable messages that name it"
