"""SIS connectors as the import service meets them: a connector in another language (JSON bodies), a
connector that publishes the same messages twice, and rows of one student arriving out of order."""

from __future__ import annotations

import json
from typing import Any

from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from tests.e2e.system.system_support import (
    JSON,
    connector,
    email,
    essence,
    header,
    new_campus,
    outcome_name,
    rows_message,
    student_row,
)
from tests.process_stack import ProcessStack, eventually, job_counts, unique


def _json_row(number: int, username: str, address: str, first: str, last: str) -> dict[str, Any]:
    # int64 as a JSON string on odd rows and as a number on even ones: proto3 JSON accepts both
    return {
        "rowNumber": str(number) if number % 2 else number,
        "username": username,
        "emailAddress": address,
        "firstName": first,
        "lastName": last,
        "extra": {"cohort": "2026", "program": "BSc"},
    }


async def test_a_json_connector_publishing_chunks_and_the_end_completes_with_exact_counts(
    stack: ProcessStack,
) -> None:
    campus = await new_campus(stack)
    known = [await campus.student(f"known{n}", email(f"known{n}"), "Kim", f"Known{n}") for n in range(3)]
    rows = [_json_row(n + 1, f"new{n}", email(f"new{n}"), "Nia", f"New{n}") for n in range(20)]
    rows += [_json_row(21 + n, u.username, u.email, u.first_name, u.last_name) for n, u in enumerate(known)]
    rows += [_json_row(24, "bad1", "no-at-sign", "Bad", "One"), _json_row(25, "", email("x"), "No", "Name")]
    job_id = unique("json-job")
    envelope = {
        "jobId": job_id,
        "schoolId": campus.id,
        "mode": "IMPORT_MODE_ONGOING_SYNC",
        "sourceName": "a connector written in PHP",
    }
    async with connector(stack) as sis:
        for start in range(0, len(rows), 7):
            body = {**envelope, "rows": {"rows": rows[start : start + 7]}}
            await sis.raw(
                json.dumps(body).encode(),
                content_type=f"{JSON}; charset=utf-8",
                routing_key=f"rows.{campus.id}",
            )
        end = {**envelope, "end": {"totalRows": str(len(rows))}}
        await sis.raw(json.dumps(end).encode(), content_type=JSON, routing_key=f"rows.{campus.id}")

    job = await stack.wait_job(job_id)

    assert (job.state, job.total_rows, job.rows_received, job.dead_lettered) == (
        pb.IMPORT_JOB_STATE_COMPLETED,
        25,
        25,
        0,
    )
    assert job.source_name == "a connector written in PHP"
    assert job_counts(job) == {
        "created": 20,
        "updated": 0,
        "unchanged": 3,
        "skipped": 0,
        "failed": 2,
        "approved": 0,
    }
    records = await stack.row_results(job_id)
    assert [r.row_number for r in records] == list(range(1, 26))
    assert dict(records[0].row.extra) == {"cohort": "2026", "program": "BSc"}
    assert [r.reason for r in records[23:]] == ["INVALID_ROW", "INVALID_ROW"]
    created = await campus.user(records[0].user_id)
    assert (created.username, created.last_name, created.origin) == (
        "new0",
        "New0",
        res.USER_ORIGIN_STUDENT_FILE,
    )


async def test_publishing_the_same_messages_again_changes_nothing(stack: ProcessStack) -> None:
    campus = await new_campus(stack)
    pending = await campus.sign_up(email("pend", "gmail.com"))
    moved = await campus.student("mover", email("mover"), "Mo", "Ver")
    job = header(campus.id)
    rows = [student_row(n, f"dup{n}", email(f"dup{n}"), "Dee", f"Up{n}") for n in range(1, 31)]
    rows.append(student_row(31, pending.email, pending.email, "Pat", "Approved"))
    rows.append(student_row(32, "mover", moved.email, "Mo", "Moved"))
    async with connector(stack) as sis:
        await sis.rows(job, rows, per_message=10)
        await sis.end(job, len(rows))
        first = await stack.wait_job(job.job_id)
        results = await stack.row_results(job.job_id)
        users, audit = await campus.users(), await campus.audit_events()
        duplicates = await stack.metric("rollcall_import_duplicate_rows_total")

        for sent in list(sis.sent):  # the very same messages (ids, bodies) a second time
            await sis.republish(sent)

        async def all_seen_again() -> bool:
            return await stack.metric("rollcall_import_duplicate_rows_total") >= duplicates + len(rows)

        await eventually(all_seen_again, what="the redelivered rows reaching the import service")
        sentinel = header(campus.id)
        await sis.rows(sentinel, [student_row(1, "sentinel", email("sentinel"))])
        await sis.end(sentinel, 1)
        await stack.wait_job(sentinel.job_id)

    again = await stack.get_job(job.job_id)
    assert again is not None
    assert job_counts(first) == {
        "created": 30,
        "updated": 2,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "approved": 1,
    }
    assert (job_counts(again), again.rows_received, again.total_rows) == (job_counts(first), 32, 32)
    assert again.complete_time == first.complete_time
    assert await stack.row_results(job.job_id) == results
    after = [u for u in await campus.users() if u.username != "sentinel"]
    assert after == users  # same users, fields, update times and etags
    assert len(await campus.audit_events()) == len(audit) + 1  # only the sentinel's creation
    assert await stack.metric("rollcall_import_duplicate_rows_total") == duplicates + len(rows)


async def test_rows_of_one_student_out_of_order_end_with_the_highest_rows_values(stack: ProcessStack) -> None:
    campus = await new_campus(stack)
    address = email("order")
    job = header(campus.id)
    versions = {1: "First", 2: "Second", 3: "Third"}
    async with connector(stack) as sis:
        for received, number in enumerate((3, 1, 2), start=1):
            await sis.send(
                rows_message(job, [student_row(number, "ooo", address, versions[number], "Order")])
            )

            async def applied(count: int = received) -> bool:
                found = await stack.get_job(job.job_id)
                return found is not None and found.rows_received >= count

            await eventually(applied, what=f"{received} rows applied")  # each row its own batch
        await sis.end(job, 3)

        burst = header(campus.id)  # the same, published back to back: batching may merge them
        burst_address = email("burst")
        for number in (3, 1, 2):
            row = student_row(number, "burst", burst_address, versions[number], "Burst")
            await sis.send(rows_message(burst, [row]))
        await sis.end(burst, 3)

    await stack.wait_job(job.job_id)
    records = {r.row_number: r for r in await stack.row_results(job.job_id)}
    assert essence(records[3])[:3] == (3, "CREATED", "")
    for number in (1, 2):
        assert (outcome_name(records[number].outcome), records[number].reason) == ("SKIPPED", "SUPERSEDED")
        assert records[number].user_id == records[3].user_id
    student = await campus.user(records[3].user_id)
    assert (student.first_name, student.username, student.email) == ("Third", "ooo", address)

    await stack.wait_job(burst.job_id)
    burst_records = await stack.row_results(burst.job_id)
    assert [r.row_number for r in burst_records] == [1, 2, 3]
    assert len({r.user_id for r in burst_records}) == 1
    burst_student = await campus.user(burst_records[0].user_id)
    assert burst_student.first_name == "Third"
