"""``Ingest.receive`` on fakes: for each delivery, accept / dead-letter / wait, and what is recorded.

In the style of cosmicpython's ``tests/unit/test_handlers.py``: the use case over in-memory ports,
one rule a test, no broker, database or identity."""

from __future__ import annotations

import uuid

from import_service.domain.jobs import ImportMode, JobSpec, Outcome
from import_service.domain.messages import EndMessage, RowsMessage
from import_service.domain.rows import FileRow
from tests.unit.importer.fakes import FakeDelivery, IngestHarness


def _spec(**fields: object) -> JobSpec:
    values: dict[str, object] = {"job_id": str(uuid.uuid4()), "school_id": str(uuid.uuid4())}
    values.update(fields)
    return JobSpec(mode=ImportMode.ONGOING_SYNC, **values)  # type: ignore[arg-type]


def _rows(*numbers: int, name: str = "ok") -> tuple[FileRow, ...]:
    return tuple(FileRow(n, f"{name}-{n}", f"s{n}@uni.example") for n in numbers)


async def test_rows_and_end_are_applied_recorded_and_acknowledged_after_the_commit() -> None:
    h = IngestHarness()
    spec = _spec()
    await h.send("rows", RowsMessage(spec, _rows(1, 2, 3)))
    assert h.settled.acked == []  # not before the outcomes are recorded
    await h.send("end", EndMessage(spec, 3))
    await h.until(lambda: "rows" in h.settled.acked)

    job = h.store.state.jobs[spec.job_id]
    assert job.complete_time is not None and job.counts.created == 3
    assert sorted(h.settled.acked) == ["end", "rows"]
    assert h.identity.calls == [(spec.school_id, [1, 2, 3])]


async def test_a_connector_not_allowed_for_the_school_is_dead_lettered_before_anything_is_created() -> None:
    h = IngestHarness()
    spec = _spec()
    await h.send("m", RowsMessage(spec, _rows(1)), user_id="stranger")

    assert h.dead_reasons() == [("m", "CONNECTOR_NOT_ALLOWED")]
    assert h.settled.acked == ["m"] and spec.job_id not in h.store.state.jobs
    (letter,) = h.store.state.letters.values()
    assert letter.school_id is None and letter.job_id is None


async def test_a_message_without_user_id_is_nobodys() -> None:
    h = IngestHarness()
    await h.send("m", RowsMessage(_spec(), _rows(1)), user_id=None)
    assert h.dead_reasons() == [("m", "CONNECTOR_NOT_ALLOWED")]


async def test_an_undecodable_body_is_dead_lettered_recorded_and_acknowledged() -> None:
    h = IngestHarness()
    await h.send("m", None, routing_key="rows.some-school")

    assert h.dead_reasons() == [("m", "UNDECODABLE")]
    (letter,) = h.store.state.letters.values()
    assert (
        letter.reason == "UNDECODABLE" and letter.dedupe_key == "id:m" and letter.school_id == "some-school"
    )
    assert h.settled.acked == ["m"] and h.settled.requeued == []


async def test_a_message_contradicting_its_job_is_job_mismatch_and_counted_on_it() -> None:
    h = IngestHarness()
    spec = _spec()
    await h.send("first", RowsMessage(spec, _rows(1)))
    await h.send(
        "other-mode", RowsMessage(_spec(job_id=spec.job_id, school_id=spec.school_id, dry_run=True), _rows(2))
    )

    assert h.dead_reasons() == [("other-mode", "JOB_MISMATCH")]
    await h.until(lambda: "first" in h.settled.acked)
    job = await h.store.jobs.get(spec.job_id)
    assert job is not None and job.dead_lettered == 1


async def test_a_second_end_with_another_total_is_job_mismatch() -> None:
    h = IngestHarness()
    spec = _spec()
    await h.send("end", EndMessage(spec, 2))
    await h.send("end-again", EndMessage(spec, 2))
    await h.send("other-end", EndMessage(spec, 3))

    assert h.settled.acked == ["end", "end-again", "other-end"]
    assert h.dead_reasons() == [("other-end", "JOB_MISMATCH")]
    assert h.store.state.jobs[spec.job_id].total_rows == 2


async def test_a_refusal_routed_to_another_school_is_not_counted_on_the_job() -> None:
    h = IngestHarness()
    spec = _spec()
    await h.send("ok", EndMessage(spec, 0))
    await h.send("elsewhere", EndMessage(spec, 5), routing_key=f"rows.{uuid.uuid4()}")

    assert h.dead_reasons() == [("elsewhere", "JOB_MISMATCH")]
    job = await h.store.jobs.get(spec.job_id)
    assert job is not None and job.dead_lettered == 0


async def test_when_the_dead_letter_copy_fails_the_message_goes_back_to_the_queue_unrecorded() -> None:
    h = IngestHarness()
    h.dead.broken = True
    await h.send("m", None)

    assert h.settled.requeued == ["m"] and h.settled.acked == []
    assert h.store.state.letters == {}


async def test_an_unexpected_failure_is_processing_failed_not_a_redelivery_loop() -> None:
    h = IngestHarness()

    async def broken(spec: JobSpec) -> None:
        raise RuntimeError("boom")

    h.store.jobs.ensure = broken  # type: ignore[method-assign, assignment]
    spec = _spec()
    await h.send("m", RowsMessage(spec, _rows(1)))

    assert h.dead_reasons() == [("m", "PROCESSING_FAILED")]
    (letter,) = h.store.state.letters.values()
    assert letter.job_id == spec.job_id and "RuntimeError" in letter.detail


async def test_an_identity_outage_is_waited_out_the_message_stays_unsettled() -> None:
    h = IngestHarness()
    spec = _spec()
    h.identity.down.add(spec.school_id)
    await h.send("rows", RowsMessage(spec, _rows(1, 2)))
    await h.until(lambda: len(h.identity.calls) >= 3)  # tried again and again

    assert h.settled.acked == [] and h.dead.sent == [] and h.store.outcomes(spec.job_id) == {}
    h.identity.down.clear()
    await h.until(lambda: h.settled.acked == ["rows"])
    assert {r.outcome for r in h.store.outcomes(spec.job_id).values()} == {Outcome.CREATED}


async def test_while_shutting_down_a_message_is_left_for_redelivery() -> None:
    h = IngestHarness()
    spec = _spec()
    await h.send("first", RowsMessage(spec, _rows(1)))
    assert await h.ingest.drain(1.0)
    await h.send("late", RowsMessage(spec, _rows(2)))
    await h.send("late-end", EndMessage(_spec(), 0))

    assert h.settled.acked == ["first"] and h.settled.requeued == [] and h.dead.sent == []


async def test_a_school_identity_does_not_know_fails_every_row_with_its_reason() -> None:
    h = IngestHarness()
    spec = _spec()
    h.identity.unknown_schools.add(spec.school_id)
    await h.send("rows", RowsMessage(spec, _rows(1, 2, 3)))
    await h.until(lambda: h.settled.acked == ["rows"])

    outcomes = h.store.outcomes(spec.job_id)
    assert {(r.outcome, r.reason) for r in outcomes.values()} == {(Outcome.FAILED, "SCHOOL_NOT_FOUND")}
    assert len(h.identity.calls) == 1  # the whole batch, not split


async def test_an_answer_about_other_rows_is_split_down_and_each_row_fails_alone() -> None:
    h = IngestHarness()
    spec = _spec()
    h.identity.answer_wrong_rows = True
    await h.send("rows", RowsMessage(spec, _rows(1, 2)))
    await h.until(lambda: h.settled.acked == ["rows"])

    messages = {r.message for r in h.store.outcomes(spec.job_id).values()}
    assert messages == {"identity refused this row (BAD_ANSWER, IDENTITY_REFUSED)"}


async def test_a_redelivered_message_is_recorded_once_and_acknowledged_again() -> None:
    h = IngestHarness()
    spec = _spec()
    await h.send("a", RowsMessage(spec, _rows(1, 2)))
    await h.until(lambda: "a" in h.settled.acked)
    await h.send("a-again", RowsMessage(spec, _rows(1, 2)))
    await h.until(lambda: "a-again" in h.settled.acked)

    assert len(h.identity.calls) == 1  # the recorded rows were skipped, not applied twice
    assert h.store.state.jobs[spec.job_id].rows_recorded == 2


async def test_rows_of_one_message_in_two_batches_settle_it_once_after_both() -> None:
    h = IngestHarness(batch_rows=2)
    spec = _spec()
    await h.send("five", RowsMessage(spec, _rows(1, 2, 3, 4, 5)))
    await h.until(lambda: h.settled.acked == ["five"])

    assert [numbers for _, numbers in h.identity.calls] == [[1, 2], [3, 4], [5]]
    assert h.ingest.settler.stats.acked == 1 and h.ingest.settler.in_flight == 0


async def test_receive_reports_the_rows_a_message_carries_for_prefetch_sizing() -> None:
    h = IngestHarness()
    spec = _spec()
    rows = await h.ingest.receive(h_delivery(h, RowsMessage(spec, _rows(1, 2, 3))))
    end = await h.ingest.receive(h_delivery(h, EndMessage(spec, 3)))
    refused = await h.ingest.receive(h_delivery(h, None))
    assert (rows, end, refused) == (3, 1, 0)


def h_delivery(h: IngestHarness, message: RowsMessage | EndMessage | None) -> FakeDelivery:
    body = b"garbage" if message is None else h.decoder.body_of(message)
    school = "" if message is None else message.spec.school_id
    return FakeDelivery(str(uuid.uuid4()), h.settled, body=body, school_id=school)
