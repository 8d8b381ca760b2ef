"""P6 (operations.md): a guarded job, 100k rows, ≥ 0.5 × the same job unguarded — and P1 unchanged.

After a warm-up job, every school is seeded with ``--rows`` students by an ordinary ONGOING_SYNC job
(P1's path: the file published 100 rows a message), at threshold 0 and 10, so the seeds also show
that an ordinary sync never waits for the guard: the two rates, P1's ratio to the raw
``executemany`` upsert measured in the same run, and identity's count of GetImportGuard calls
(its Prometheus counter) during the seeds — 0. Then, each on a fresh school seeded the same way,
rows/s from first publish to job COMPLETED (the job's counts, hold figures and archives checked) of:

(a) MANUAL_FILE with sensitive_fields_update over the school's students: first_name changed on 90 %
    of the rows, the email on 1 % (sensitive, under the 10 % threshold, so not held) —
    threshold 0 (unguarded: applied directly) vs threshold 10 (guarded: preview, decide, apply);
(b) a full-roster MANUAL_FILE of the same size naming all but 1 % of the students (99 % of its rows
    name them, first_name changed on 90 %; 1 % are new students), threshold 10 (guarded: preview,
    decide with a dry-run sweep, apply, sweep archives the 1 %) vs the same file without full_roster
    at threshold 0; also the full roster at threshold 0 (unguarded: applied, then swept).

``python -m bench.guarded_jobs [--rows N] [--quick]`` — prints both P6 ratios last (target ≥ 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import re
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.baseline import student
from bench.import_throughput import baseline_upsert, write_file
from bench.stack import Stack, publish_csv, running_stack, wait_completed
from import_service.domain.jobs import ImportMode, JobSpec
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as igrpc
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pgrpc
from tests.process_stack import free_port

ROWS_PER_MESSAGE = 100
GUARD_PERCENT = 10  # the default threshold
WARM_UP_ROWS = 20_000


def renamed(n: int) -> bool:
    """The rows whose first_name a change file changes (90 %)."""
    return n % 10 != 0


def sensitive(n: int) -> bool:
    """The rows whose email a change file changes (1 %)."""
    return n % 100 == 50


def changed_student(n: int, domain: str) -> tuple[str, str, str, str, str]:
    username, email, first, last, auth = student(n, domain)
    if renamed(n):
        first = f"{first}b"
    if sensitive(n):
        email = f"s{n:07d}.new@{domain}"  # same username, new address: a sensitive change
    return username, email, first, last, auth


def roster_rows(rows: int, domain: str) -> Iterator[tuple[str, str, str, str, str]]:
    """``rows`` rows: every student but each hundredth (seeded numbers 100, 200, ...), then as many
    new students, so the file names all but 1 % of the school and is as large as it."""
    for n in range(1, rows + 1):
        if n % 100 != 0:
            username, email, first, last, auth = student(n, domain)
            yield username, email, f"{first}b" if renamed(n) else first, last, auth
    for n in range(rows + 1, rows + 1 + rows // 100):
        yield student(n, domain)


def write_rows(path: Path, rows: Iterator[tuple[str, str, str, str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["username", "email_address", "first_name", "last_name", "auth_identifier"])
        writer.writerows(rows)
    return path


GUARD_CALLS = re.compile(r'^rollcall_rpc_total\{[^}]*method="[^"]*GetImportGuard"[^}]*\} ([0-9.e+]+)$', re.M)


def guard_calls(metrics_port: int) -> int:
    """GetImportGuard calls identity has answered so far (its Prometheus counter)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return int(sum(float(value) for value in GUARD_CALLS.findall(text)))


@dataclass
class School:
    id: str
    domain: str
    threshold: int
    seed_rate: float = 0.0


async def create_school(stack: Stack, threshold: int) -> School:
    domain = f"{uuid.uuid4().hex[:8]}.edu"
    async with grpc.aio.insecure_channel(stack.identity_addr) as channel:
        reply = await igrpc.IdentityServiceStub(channel).CreateSchool(
            ipb.CreateSchoolRequest(
                name=f"Bench {domain}", email_domains=[domain], change_threshold_percent=threshold
            ),
            metadata=stack.metadata(),
        )
    if reply.change_threshold_percent != threshold:
        raise SystemExit(f"school threshold {reply.change_threshold_percent}, wanted {threshold}")
    return School(reply.id, domain, threshold)


async def run_job(stack: Stack, spec: JobSpec, path: Path) -> tuple[pb.ImportJob, float]:
    """Publishes ``path`` as job ``spec``; (the COMPLETED job, seconds from first publish)."""
    started = time.perf_counter()
    await publish_csv(stack, path, spec, ROWS_PER_MESSAGE)
    job = await wait_completed(stack, spec.job_id)
    return job, time.perf_counter() - started


async def archives_of(stack: Stack, job_id: str, expected: int) -> int:
    """The students ListJobArchives lists for the job, asked again for a few seconds while fewer than
    ``expected`` (the runner marks the job COMPLETED before it keeps the list, in its own statement)."""
    started = time.perf_counter()
    while True:
        count = await _archives_listed(stack, job_id)
        if count >= expected or time.perf_counter() - started > 10:
            break
        await asyncio.sleep(0.05)
    if count and time.perf_counter() - started > 0.05:
        print(f"note: ListJobArchives listed them {time.perf_counter() - started:.2f} s after COMPLETED")
    return count


async def _archives_listed(stack: Stack, job_id: str) -> int:
    count, token = 0, ""
    async with grpc.aio.insecure_channel(stack.import_addr) as channel:
        stub = pgrpc.ImportServiceStub(channel)
        while True:
            page = await stub.ListJobArchives(
                pb.ListJobArchivesRequest(job_id=job_id, page_size=500, page_token=token),
                metadata=stack.metadata(),
            )
            count += len(page.archives)
            token = page.next_page_token
            if not token:
                return count


async def seed(stack: Stack, rows: int, threshold: int, folder: Path) -> School:
    """A school of ``rows`` students (ordinary sync); its rate is P1's end-to-end figure."""
    school = await create_school(stack, threshold)
    path = write_file(folder, rows, school.domain)
    spec = JobSpec(str(uuid.uuid4()), school.id, ImportMode.ONGOING_SYNC, source_name=path.name)
    job, elapsed = await run_job(stack, spec, path)
    if job.counts.created != rows or job.HasField("hold"):
        raise SystemExit(f"seed: expected {rows} created and no hold, job says {job.counts} {job.hold}")
    school.seed_rate = rows / elapsed
    return school


def check(job: pb.ImportJob, guarded: bool, what: str, **expected: int) -> None:
    counts = job.counts
    got = {name: getattr(counts, name) for name in ("created", "updated", "unchanged", "skipped", "failed")}
    got["email_changes"] = counts.field_changes.get("email_address", 0)
    wrong = {name: (got[name], value) for name, value in expected.items() if got[name] != value}
    if wrong:
        raise SystemExit(f"{what}: (got, expected) {wrong}; counts {counts}")
    if job.HasField("hold") != guarded or (guarded and job.hold.threshold_percent != GUARD_PERCENT):
        raise SystemExit(f"{what}: guarded {guarded} but hold is {job.hold}")


async def sensitive_job(stack: Stack, school: School, rows: int, folder: Path) -> float:
    guarded = school.threshold > 0
    path = write_rows(
        folder / f"changes-{school.domain}.csv",
        (changed_student(n, school.domain) for n in range(1, rows + 1)),
    )
    spec = JobSpec(str(uuid.uuid4()), school.id, ImportMode.MANUAL_FILE, sensitive_fields_update=True)
    job, elapsed = await run_job(stack, spec, path)
    changed = sum(1 for n in range(1, rows + 1) if renamed(n) or sensitive(n))
    emails = sum(1 for n in range(1, rows + 1) if sensitive(n))
    what = f"sensitive job, threshold {school.threshold}"
    check(
        job,
        guarded,
        what,
        created=0,
        updated=changed,
        unchanged=rows - changed,
        failed=0,
        email_changes=emails,
    )
    if guarded and job.hold.sensitive_changes != emails:
        raise SystemExit(
            f"{what}: hold says {job.hold.sensitive_changes} sensitive changes, expected {emails}"
        )
    return rows / elapsed


async def roster_job(stack: Stack, school: School, rows: int, full_roster: bool, folder: Path) -> float:
    guarded = full_roster and school.threshold > 0
    path = write_rows(folder / f"roster-{school.domain}.csv", roster_rows(rows, school.domain))
    spec = JobSpec(str(uuid.uuid4()), school.id, ImportMode.MANUAL_FILE, full_roster=full_roster)
    job, elapsed = await run_job(stack, spec, path)
    left_out = rows // 100
    named = [n for n in range(1, rows + 1) if n % 100 != 0]
    changed = sum(1 for n in named if renamed(n))
    what = f"roster job, full_roster {full_roster}, threshold {school.threshold}"
    archives = left_out if full_roster else 0
    check(job, guarded, what, created=left_out, updated=changed, unchanged=len(named) - changed, failed=0)
    if job.counts.archived != archives:
        raise SystemExit(f"{what}: the job counts {job.counts.archived} archived, expected {archives}")
    listed = await archives_of(stack, spec.job_id, archives) if full_roster else 0
    if listed != archives:
        raise SystemExit(f"{what}: ListJobArchives lists {listed}, expected {archives}")
    if guarded and job.hold.archives != left_out:
        raise SystemExit(f"{what}: hold says {job.hold.archives} archives, expected {left_out}")
    return rows / elapsed


async def main(rows: int) -> None:
    metrics_port = free_port()
    calls: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with running_stack({"ROLLCALL_IDENTITY_METRICS_PORT": str(metrics_port)}) as stack:

            async def counted(what: str, job: Awaitable[float]) -> float:
                before = guard_calls(metrics_port)
                rate = await job
                calls[what] = guard_calls(metrics_port) - before
                return rate

            base = await baseline_upsert(stack, rows)
            await seed(stack, min(rows, WARM_UP_ROWS), GUARD_PERCENT, folder)  # warm-up, not measured
            # the first four seeds in the order off, on, on, off: a drift (the users table grows,
            # the machine's other load changes) weighs on both the same
            thresholds = [0, GUARD_PERCENT, GUARD_PERCENT, 0, 0]
            before = guard_calls(metrics_port)
            schools = [await seed(stack, rows, threshold, folder) for threshold in thresholds]
            calls["ordinary syncs"] = guard_calls(metrics_port) - before
            a_plain, a_guarded, b_guarded, b_plain, b_roster = schools
            a_base = await counted("(a) unguarded", sensitive_job(stack, a_plain, rows, folder))
            a_rate = await counted("(a) guarded", sensitive_job(stack, a_guarded, rows, folder))
            b_base = await counted("(b) without full_roster", roster_job(stack, b_plain, rows, False, folder))
            b_rate = await counted("(b) guarded", roster_job(stack, b_guarded, rows, True, folder))
            b_full = await counted(
                "(b) full roster unguarded", roster_job(stack, b_roster, rows, True, folder)
            )
    off = [s.seed_rate for s in schools[:4] if s.threshold == 0]
    on = [s.seed_rate for s in schools[:4] if s.threshold > 0]
    off_rate, on_rate = sum(off) / len(off), sum(on) / len(on)
    print(f"raw executemany upsert (P1 baseline): {base:,.0f} rows/s")
    seeds = ", ".join(f"threshold {s.threshold}: {s.seed_rate:,.0f}" for s in schools)
    print(f"ordinary syncs (the seeds, in order, 100 rows/message): {seeds} rows/s")
    print(
        f"P1 ordinary sync, guard on (threshold {GUARD_PERCENT}) {on_rate:,.0f} rows/s vs off (0) {off_rate:,.0f} "
        f"rows/s (means of the first four): {on_rate / off_rate:.2f} x; P1 ratio {on_rate / base:.2f} (on), "
        f"{off_rate / base:.2f} (off)"
    )
    print("identity GetImportGuard calls: " + ", ".join(f"{what} {n}" for what, n in calls.items()))
    print(
        f"(a) sensitive MANUAL_FILE, 90 % first names, 1 % emails: unguarded (threshold 0) {a_base:,.0f} rows/s; "
        f"guarded (threshold {GUARD_PERCENT}) {a_rate:,.0f} rows/s"
    )
    print(
        f"(b) file naming all but 1 % (90 % first names, 1 % new): without full_roster (threshold 0) "
        f"{b_base:,.0f} rows/s; full roster guarded (threshold {GUARD_PERCENT}) {b_rate:,.0f} rows/s; "
        f"full roster unguarded (threshold 0) {b_full:,.0f} rows/s (guarded / that: {b_rate / b_full:.2f})"
    )
    print(f"P6 (a) sensitive job ratio {a_rate / a_base:.2f} (target >= 0.5)")
    print(f"P6 (b) full roster ratio {b_rate / b_base:.2f} (target >= 0.5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="2,000 rows a job: a smoke test of the script")
    args, _ = parser.parse_known_args()  # run_all passes every bench the same arguments
    if args.quick:
        args.rows = 2_000
    if args.rows < 100:
        parser.error("--rows must be at least 100 (1 % of the rows is the sensitive / left-out share)")
    print(f"{args.rows:,} rows a job")
    asyncio.run(main(args.rows))
