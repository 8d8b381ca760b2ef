"""The batcher on in-memory fakes of its ports: a refused batch is split until the bad rows are alone,
a lone refused row is FAILED and acknowledged, one job in an outage does not hold the slots other
schools' jobs need, and rows past a job's total are dead-lettered JOB_MISMATCH."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from import_service.domain.jobs import IDENTITY_REFUSED, ImportMode, JobSpec, Outcome
from import_service.domain.messages import EndMessage, RowsMessage
from import_service.domain.rows import FileRow
from tests.unit.importer.fakes import IngestHarness


def _spec(school: str | None = None) -> JobSpec:
    return JobSpec(str(uuid.uuid4()), school or str(uuid.uuid4()), ImportMode.ONGOING_SYNC)


def _rows(count: int, poison: Sequence[int] = ()) -> tuple[FileRow, ...]:
    return tuple(
        FileRow(n, f"{'poison' if n in poison else 'ok'}-{n}", f"s{n}@uni.example")
        for n in range(1, count + 1)
    )


async def test_a_refused_batch_is_split_until_the_poison_rows_are_alone() -> None:
    h = IngestHarness()
    spec = _spec()
    await h.send("rows", RowsMessage(spec, _rows(64, poison=(5, 40))))
    await h.send("end", EndMessage(spec, 64))

    await h.until(lambda: "rows" in h.settled.acked)

    job = h.store.state.jobs[spec.job_id]
    assert job.rows_recorded == 64 and job.complete_time is not None
    failed = {n: r for n, r in h.store.outcomes(spec.job_id).items() if r.outcome is Outcome.FAILED}
    assert sorted(failed) == [5, 40]
    assert {r.reason for r in failed.values()} == {IDENTITY_REFUSED}
    assert {r.message for r in failed.values()} == {"identity refused this row (INTERNAL)"}
    assert h.dead.sent == []  # nothing dead-lettered, nothing requeued: the message is acknowledged
    assert h.settled.requeued == []
    assert len(h.identity.calls) < 30  # bisection, not one call per row


async def test_one_job_in_an_outage_does_not_hold_every_slot() -> None:
    h = IngestHarness(max_in_flight=1, batch_rows=10)
    stuck, other = _spec(), _spec()
    h.identity.down.add(stuck.school_id)
    for n in range(5):  # five batches of the stuck job, each waiting out its "outage"
        await h.send(f"stuck-{n}", RowsMessage(stuck, _rows(10 * (n + 1))[10 * n :]))
    await h.until(lambda: len(h.identity.calls) >= 5)
    await h.send("other", RowsMessage(other, _rows(10)))

    await h.until(lambda: "other" in h.settled.acked)  # got a slot between the stuck job's retries

    assert not any(name.startswith("stuck") for name in h.settled.acked)
    h.identity.down.clear()
    await h.until(lambda: len(h.settled.acked) == 6)
    assert await h.ingest.drain(1.0)


async def test_rows_past_the_total_are_dead_lettered_job_mismatch_and_resent_rows_complete() -> None:
    h = IngestHarness()
    spec = _spec()
    await h.send("end", EndMessage(spec, 5))
    await h.send("first", RowsMessage(spec, _rows(5)))
    await h.send("again", RowsMessage(spec, _rows(5)))  # re-sent rows
    await h.until(lambda: {"first", "again"} <= set(h.settled.acked))
    assert h.store.state.jobs[spec.job_id].complete_time is not None

    extra = (FileRow(3, "ok-3", "s3@uni.example"), FileRow(6, "ok-6", "s6@uni.example"))
    await h.send("sixth", RowsMessage(spec, extra))
    await h.until(lambda: any(name == "sixth" for name, _, _ in h.dead.sent))

    assert h.dead_reasons() == [("sixth", "JOB_MISMATCH")]
    assert 6 not in h.store.outcomes(spec.job_id)
    assert h.store.state.jobs[spec.job_id].rows_recorded == 5
