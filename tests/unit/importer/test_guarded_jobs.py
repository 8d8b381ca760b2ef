"""Guarded jobs, full rosters, held-job decisions and undo on fakes (issue 9, product.md "File
safety"): the consumer previews a guarded job, the job runner decides, applies, sweeps and undoes,
staff release, discard and undo. One rule a test; the fake identity keeps a few students."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from import_service.domain.jobs import Hold, ImportMode, JobSpec, JobState, Outcome, Phase
from import_service.domain.messages import EndMessage, RowsMessage
from import_service.domain.rows import FileRow
from import_service.service.access import SchoolAccess
from import_service.service.applying import RowsApplying
from import_service.service.decisions import JobDecisions
from import_service.service.job_runner import JobRunner
from import_service.service.jobs import JobQueries
from import_service.service.retrying import Backoff
from shared.errors import Reason, RollcallError
from shared.files.failed_rows_writer import FailedRowsCsv
from shared.grpc_kit.auth import Caller
from shared.settings import Role
from tests.unit.importer.fakes import IngestHarness

STAFF = Caller("web", Role.PLATFORM, actor_id="staff-1")
BACKOFF = Backoff(initial_seconds=0.001, cap_seconds=0.01)


class World:
    """The consumer (ingest), the job runner and staff decisions over one fake store and identity;
    a school with ``students`` students s-0 .. s-(n-1)."""

    def __init__(self, students: int = 10) -> None:
        self.h = IngestHarness()
        self.store, self.identity = self.h.store, self.h.identity
        self.school = str(uuid.uuid4())
        self.identity.staff = {"staff-1": self.school}
        for n in range(students):
            self.identity.add_student(f"st{n}", f"st{n}@uni.example")
        self.runner = self.make_runner("runner-1")
        queries = JobQueries(self.store, SchoolAccess(self.identity), FailedRowsCsv())
        self.decisions = JobDecisions(self.store, queries, self.runner.nudge)

    def make_runner(self, owner: str, lease: float = 60.0) -> JobRunner:
        applying = RowsApplying(self.identity, BACKOFF)
        return JobRunner(
            self.store,
            self.identity,
            applying,
            owner=owner,
            batch_rows=3,
            backoff=BACKOFF,
            lease_seconds=lease,
        )

    def spec(self, **fields: object) -> JobSpec:
        values: dict[str, object] = {"mode": ImportMode.MANUAL_FILE, "sensitive_fields_update": True}
        values.update(fields)
        return JobSpec(str(uuid.uuid4()), self.school, **values)  # type: ignore[arg-type]

    def roster(self, *, changed: set[int] = frozenset(), missing: set[int] = frozenset()) -> list[FileRow]:  # type: ignore[assignment]
        """Every student's row (their email, or a new one for ``changed``), leaving out ``missing``."""
        rows = []
        for n in range(len(self.identity.students)):
            if n in missing:
                continue
            email = f"new{n}@uni.example" if n in changed else f"st{n}@uni.example"
            rows.append(FileRow(len(rows) + 1, f"st{n}", email))
        return rows

    async def send_file(self, spec: JobSpec, rows: list[FileRow]) -> None:
        """Publishes ``rows`` and the end like a connector, then lets the runner finish its work."""
        if rows:
            await self.h.send("rows", RowsMessage(spec, tuple(rows)))
        await self.h.send("end", EndMessage(spec, len(rows)))
        await self.h.until(lambda: self.store.state.jobs[spec.job_id].phase is not Phase.RECEIVING)
        await self.runner.run_until_idle()

    def job(self, spec: JobSpec):  # type: ignore[no-untyped-def]
        return self.store.state.jobs[spec.job_id]

    def emails(self) -> list[str]:
        return [s["email"] for s in self.identity.students.values()]


async def test_a_sensitive_file_changing_30_percent_is_held_with_nothing_applied() -> None:
    w = World()
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1, 2, 3}))

    job = w.job(spec)
    assert job.state is JobState.HELD
    assert job.hold == Hold(sensitive_changes=3, archives=0, school_students=10, threshold_percent=10)
    assert set(w.identity.dry_runs) == {True}, "a guarded job is previewed as a dry run only"
    assert "new1@uni.example" not in w.emails()
    preview = [
        r.result for r in w.store.state.rows[spec.job_id].values() if r.result.outcome is Outcome.UPDATED
    ]
    assert [c[1:] for r in preview for c in r.changes] == [
        ("st1@uni.example", "new1@uni.example"),
        ("st2@uni.example", "new2@uni.example"),
        ("st3@uni.example", "new3@uni.example"),
    ]


async def test_discard_ends_a_held_job_with_nothing_applied_and_only_once() -> None:
    w = World()
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1, 2, 3}))

    discarded = await w.decisions.discard(STAFF, spec.job_id, "")
    await w.runner.run_until_idle()
    assert discarded.state is JobState.DISCARDED and discarded.complete_time is not None
    assert set(w.identity.dry_runs) == {True} and "new1@uni.example" not in w.emails()
    with pytest.raises(RollcallError) as again:
        await w.decisions.release(STAFF, spec.job_id, "")
    assert again.value.reason is Reason.JOB_NOT_HELD


async def test_the_same_file_under_the_threshold_applies_at_once() -> None:
    w = World()
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1}))

    job = w.job(spec)
    assert job.state is JobState.COMPLETED
    assert job.hold is not None and not job.hold.exceeded
    assert "new1@uni.example" in w.emails()
    assert (
        job.counts.updated == 1
        and job.counts.unchanged == 9
        and job.counts.field_changes == {"email_address": 1}
    )
    assert w.identity.dry_runs.count(False) > 0


async def test_release_applies_every_row_afresh_not_from_the_preview() -> None:
    w = World()
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1, 2, 3}))
    w.identity.students["st2"]["email"] = "new2@uni.example"  # another job gave st2 the address meanwhile

    released = await w.decisions.release(STAFF, spec.job_id, "")
    assert released.state is JobState.RECEIVING
    await w.runner.run_until_idle()

    job = w.job(spec)
    assert job.state is JobState.COMPLETED
    outcomes = {n: r.result.outcome for n, r in w.store.state.rows[spec.job_id].items()}
    assert outcomes[3] is Outcome.UNCHANGED, "decided against the students as they are now"
    assert job.counts.updated == 2 and job.counts.unchanged == 8
    assert {"new1@uni.example", "new3@uni.example"} <= set(w.emails())


async def test_a_release_request_id_decides_once_and_cannot_be_reused_for_another_decision() -> None:
    w = World()
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1, 2, 3}))
    first = await w.decisions.release(STAFF, spec.job_id, "req-1")
    again = await w.decisions.release(STAFF, spec.job_id, "req-1")
    assert first.job_id == again.job_id == spec.job_id
    with pytest.raises(RollcallError) as reused:
        await w.decisions.discard(STAFF, spec.job_id, "req-1")
    assert reused.value.reason is Reason.REQUEST_ID_REUSED


async def test_staff_of_another_school_cannot_decide() -> None:
    w = World()
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1, 2, 3}))
    stranger = Caller("web", Role.PLATFORM, actor_id="someone-else")
    with pytest.raises(RollcallError) as refused:
        await w.decisions.release(stranger, spec.job_id, "")
    assert refused.value.reason is Reason.NOT_STAFF_OF_SCHOOL
    assert w.job(spec).state is JobState.HELD


async def test_an_ordinary_sync_is_never_previewed() -> None:
    w = World()
    spec = w.spec(mode=ImportMode.ONGOING_SYNC, sensitive_fields_update=False)
    await w.send_file(spec, w.roster())
    assert w.job(spec).state is JobState.COMPLETED and w.job(spec).hold is None
    assert set(w.identity.dry_runs) == {False}


async def test_threshold_0_turns_the_guard_off() -> None:
    w = World()
    w.identity.threshold = 0
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1, 2, 3, 4, 5}))
    assert w.job(spec).state is JobState.COMPLETED and not w.job(spec).guarded
    assert set(w.identity.dry_runs) == {False}


async def test_a_full_roster_missing_a_student_archives_exactly_that_one() -> None:
    w = World()
    spec = w.spec(sensitive_fields_update=False, full_roster=True)
    await w.send_file(spec, w.roster(missing={4}))

    job = w.job(spec)
    assert job.state is JobState.COMPLETED
    assert job.hold == Hold(0, 1, 10, 10)
    assert job.counts.archived == 1
    archives = await w.decisions.archives(STAFF, spec.job_id, 50, "")
    assert [a.user_id for a in archives[0]] == ["s-st4"] and archives[0][0].archive_time is not None
    assert w.identity.students["st4"]["status"] == "ARCHIVED"


@pytest.mark.parametrize("kept", [0, 5])
async def test_an_empty_or_truncated_full_roster_is_held_and_lists_whom_it_would_archive(kept: int) -> None:
    w = World()
    spec = w.spec(sensitive_fields_update=False, full_roster=True)
    await w.send_file(spec, w.roster()[:kept])

    job = w.job(spec)
    assert job.state is JobState.HELD and job.hold is not None
    assert job.hold.archives == 10 - kept and job.hold.school_students == 10
    would, _ = await w.decisions.archives(STAFF, spec.job_id, 50, "")
    assert len(would) == 10 - kept and all(a.archive_time is None for a in would)
    assert all(s["status"] == "ACTIVE" for s in w.identity.students.values())


async def test_a_dry_run_full_roster_tells_whom_it_would_archive_and_archives_nobody() -> None:
    w = World()
    spec = w.spec(sensitive_fields_update=False, full_roster=True, dry_run=True)
    await w.send_file(spec, w.roster(missing={2, 3}))
    job = w.job(spec)
    assert job.state is JobState.COMPLETED and job.counts.archived == 2
    assert all(s["status"] == "ACTIVE" for s in w.identity.students.values())


async def test_undo_makes_a_new_job_with_one_row_per_student_and_only_once() -> None:
    w = World()
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1}))

    undo = await w.decisions.undo(STAFF, spec.job_id, "undo-1")
    assert undo.spec.undo_of_job_id == spec.job_id and undo.state is JobState.RECEIVING
    await w.runner.run_until_idle()
    done = w.job(undo.spec)
    assert done.state is JobState.COMPLETED and done.total_rows == 10 and done.counts.updated == 10
    assert (await w.decisions.undo(STAFF, spec.job_id, "undo-1")).job_id == undo.job_id
    for job_id, why in ((spec.job_id, "undone already"), (undo.job_id, "an undo")):
        with pytest.raises(RollcallError) as refused:
            await w.decisions.undo(STAFF, job_id, "")
        assert refused.value.reason is Reason.JOB_NOT_UNDOABLE, why


async def test_a_held_job_cannot_be_undone() -> None:
    w = World()
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1, 2, 3}))
    with pytest.raises(RollcallError) as refused:
        await w.decisions.undo(STAFF, spec.job_id, "")
    assert refused.value.reason is Reason.JOB_NOT_UNDOABLE


async def test_a_runner_that_stopped_mid_apply_is_taken_over_after_its_lease() -> None:
    w = World()
    w.identity.threshold = 50
    first = w.make_runner("dies", lease=0.05)
    spec = w.spec()
    rows = w.roster(changed={1})
    await w.h.send("rows", RowsMessage(spec, tuple(rows)))
    await w.h.send("end", EndMessage(spec, len(rows)))
    await w.h.until(lambda: w.job(spec).phase is Phase.DECIDING)

    job_id = await w.store.runs.claim("dies", 0.05, [])
    assert job_id == spec.job_id
    assert await w.store.runs.claim("other", 60, []) is None, "leased: nobody else takes it"
    await first._decide(w.job(spec))  # the dead runner got as far as deciding and one batch
    batch = await w.store.runs.unapplied(spec.job_id, 3)
    results = await RowsApplying(w.identity, BACKOFF).apply(
        w.job(spec), [r.row for r in batch], dry_run=False
    )
    await w.store.runs.apply_results(spec.job_id, results)

    await w.h.until(lambda: w.store.runs.clock() > w.store.state.leases[spec.job_id][1])
    await w.runner.run_until_idle()
    job = w.job(spec)
    assert job.state is JobState.COMPLETED and job.counts.updated == 1 and job.counts.unchanged == 9
    assert not w.store.state.unapplied[spec.job_id]


async def test_a_guarded_job_of_a_school_identity_does_not_know_completes_with_its_rows_failed() -> None:
    w = World()
    w.identity.unknown_schools.add(w.school)
    spec = w.spec()
    await w.send_file(spec, w.roster(changed={1}))
    job = w.job(spec)
    assert (job.state, job.counts.failed) == (JobState.COMPLETED, 10)
    assert job.hold == Hold(0, 0, 0, 0)


async def test_an_upload_while_identity_is_down_is_unavailable_not_stuck() -> None:
    from import_service.service.job_guard import JobGuard

    w = World()
    w.identity.down.add(w.school)
    with pytest.raises(RollcallError) as down:
        await JobGuard(w.identity, BACKOFF).guarded(w.spec(), wait=False)
    assert down.value.reason is Reason.UNAVAILABLE


async def test_watching_a_job_ends_when_it_is_held() -> None:
    w = World()
    spec = w.spec()
    rows = w.roster(changed={1, 2, 3})
    await w.h.send("rows", RowsMessage(spec, tuple(rows)))
    await w.h.send("end", EndMessage(spec, len(rows)))
    queries = JobQueries(w.store, SchoolAccess(w.identity), FailedRowsCsv(), watch_poll_seconds=0.001)
    seen = []

    async def watch() -> None:
        async for job in queries.watch(STAFF, spec.job_id):
            seen.append(job.state)

    watching = asyncio.create_task(watch())
    await w.h.until(lambda: w.job(spec).phase is Phase.DECIDING)
    await w.runner.run_until_idle()
    await asyncio.wait_for(watching, 5)
    assert seen[-1] is JobState.HELD and set(seen[:-1]) <= {JobState.RECEIVING}


async def test_a_guardable_jobs_first_messages_arriving_at_once_ask_identity_for_the_guard_once() -> None:
    w = World()
    asked = 0
    answer = w.identity.import_guard

    async def counting(school_id: str) -> tuple[int, int]:
        nonlocal asked
        asked += 1
        await asyncio.sleep(0.01)
        return await answer(school_id)

    w.identity.import_guard = counting  # type: ignore[method-assign]
    spec = w.spec()
    rows = w.roster(changed={1})
    await asyncio.gather(*(w.h.send(f"m{r.row_number}", RowsMessage(spec, (r,))) for r in rows))
    await w.h.send("end", EndMessage(spec, len(rows)))
    await w.h.until(lambda: w.job(spec).phase is not Phase.RECEIVING)
    assert asked == 1
