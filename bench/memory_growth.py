"""P5 (operations.md): a 1M-row job — rows/s within 10 % of the 100k-row job, and RSS < 150 MB for
each service throughout, sampled and plotted.

One stack (``bench/stack.py``: both services as processes), a small warm-up job, then one job per
size (default 10k, 100k, 1M), each on a fresh school, each its file published 100 rows a message
and timed from first publish to job COMPLETED (as ``bench.import_throughput.end_to_end``). A thread
reads VmRSS (and VmHWM, the kernel's high-water mark, which also catches a peak between two
samples) of the identity and the import service from /proc/PID/status every second, from the moment
both serve until the last job is done, and once more at each job's start and end.

Printed: each size's rows/s and peak sampled RSS per service, then P5 last — the largest size's rate
over the next largest's (1M / 100k by default) and the peak RSS of each service over the whole run.
Written to --out (default docs/performance): p5_rss.csv (the samples), p5_jobs.csv (each job's
moments and rate) and p5_rss.png (RSS over time, one line a service, the jobs shaded and named, the
150 MB line; below it rows/s and peak RSS against the job size); ``--replot DIR`` draws the PNG
again from DIR's two CSVs without running anything.

``python -m bench.memory_growth [--sizes 10000,100000,1000000] [--quick] [--out DIR]``
(``--quick``: sizes 2000,5000,10000 into a temporary folder unless --out is given — the CI smoke test
of this script, tests/e2e/test_bench_memory_quick.py). Run the real one under
``flock /tmp/rollcall-bench.lock`` so that no other benchmark shares the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.import_throughput import fresh_job
from bench.stack import PG_URL, Stack, publish_csv, running_stack, wait_completed
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb

ROWS_PER_MESSAGE = 100
RSS_LIMIT_MB = 150.0
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 5_000, 10_000)
WARM_UP_ROWS = 5_000
QUICK_WARM_UP_ROWS = 500
DEFAULT_OUT = Path("docs/performance")
SERVICES = ("identity", "import")
WARM_UP = "warm-up"


def proc_status_mb(pid: int) -> tuple[float, float] | None:
    """VmRSS and VmHWM of ``pid`` in MB (MiB, as /proc counts kB), or None when it has gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # "VmRSS:   81234 kB"
    if "VmRSS" not in values:
        return None  # a zombie has no memory lines
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


@dataclass
class Sample:
    elapsed: float
    job: str
    service: str
    pid: int
    rss_mb: float
    hwm_mb: float


@dataclass
class Job:
    label: str
    rows: int
    called: float  # elapsed s when the job was begun (its file is written first)
    started: float = 0.0  # the timed part: first publish ...
    ended: float = 0.0  # ... to job COMPLETED
    rate: float = 0.0
    progress: list[tuple[float, int]] = field(default_factory=list)  # (elapsed s, students created)
    checkpoints: tuple[int, int] = (0, 0)  # PostgreSQL checkpoints during the job: all, requested
    wal_bytes: int = 0  # WAL the server wrote during the job (every database: keep the machine quiet)

    def tenths(self) -> list[float]:
        """Rows/s over each tenth of the job's rows (from the progress polled while it ran)."""
        rates, last_time, last_rows = [], self.started, 0
        for mark in range(1, 11):
            wanted = self.rows * mark // 10
            reached = next(((t, n) for t, n in self.progress if n >= wanted), (self.ended, self.rows))
            if reached[0] > last_time:
                rates.append((reached[1] - last_rows) / (reached[0] - last_time))
            last_time, last_rows = reached
        return rates


@dataclass
class Sampler:
    """Samples each pid's RSS every ``interval`` seconds in a thread of its own (so a busy event
    loop in this process cannot delay it); ``sample()`` also takes one on demand."""

    pids: dict[str, int]
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    job: str = ""
    t0: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def sample(self) -> None:
        with self._lock:
            elapsed = self.now()
            for service, pid in self.pids.items():
                status = proc_status_mb(pid)
                if status is not None:
                    self.samples.append(Sample(elapsed, self.job, service, pid, *status))

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def peak(self, service: str, start: float = 0.0, end: float = float("inf")) -> float:
        values = [s.rss_mb for s in self.samples if s.service == service and start <= s.elapsed <= end]
        return max(values, default=float("nan"))

    def hwm(self, service: str) -> float:
        values = [s.hwm_mb for s in self.samples if s.service == service]
        return max(values, default=float("nan"))


def size_label(rows: int) -> str:
    for unit, name in ((1_000_000, "M"), (1_000, "k")):
        if rows >= unit:
            return f"{rows / unit:g}{name}"
    return str(rows)


async def checkpoints() -> tuple[int, int, int]:
    """PostgreSQL's checkpoints so far (all of them, and those WAL volume requested: max_wal_size)
    and its WAL position in bytes."""
    conn = await asyncpg.connect(PG_URL)
    try:
        row = await conn.fetchrow(
            """SELECT checkpoints_timed + checkpoints_req AS all_, checkpoints_req,
                      pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal
               FROM pg_stat_bgwriter"""
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["all_"]), int(row["checkpoints_req"]), int(row["wal"])


async def run_job(stack: Stack, sampler: Sampler, label: str, rows: int, folder: Path) -> Job:
    """P1's job (``bench.import_throughput.end_to_end``: a fresh school, its file published 100 rows
    a message, rows/s from first publish to COMPLETED, every row created), with its moments kept for
    the plot (``stack.wait_completed`` polls it, recording its progress every 0.5 s)."""
    job = Job(label, rows, sampler.now())
    sampler.job = label
    sampler.sample()
    path, spec = await fresh_job(stack, rows, folder)
    checkpoints_before = await checkpoints()
    job.started = sampler.now()
    started = time.perf_counter()
    await publish_csv(stack, path, spec, ROWS_PER_MESSAGE)

    async def progress(reply: pb.ImportJob) -> None:
        if not job.progress or sampler.now() - job.progress[-1][0] >= 0.5:
            job.progress.append((sampler.now(), reply.counts.created))

    reply = await wait_completed(stack, spec.job_id, seen=progress)
    elapsed = time.perf_counter() - started
    job.ended = sampler.now()
    after = await checkpoints()
    job.checkpoints = (after[0] - checkpoints_before[0], after[1] - checkpoints_before[1])
    job.wal_bytes = after[2] - checkpoints_before[2]
    path.unlink()
    if reply.counts.created != rows:
        raise SystemExit(f"expected {rows} created, job says {reply.counts}")
    job.rate = rows / elapsed
    sampler.sample()
    sampler.job = ""
    return job


def write_csv(path: Path, sampler: Sampler) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["elapsed_s", "job", "service", "pid", "rss_mb", "hwm_mb"])
        for s in sampler.samples:
            writer.writerow(
                [f"{s.elapsed:.2f}", s.job, s.service, s.pid, f"{s.rss_mb:.1f}", f"{s.hwm_mb:.1f}"]
            )


JOB_COLUMNS = ["job", "rows", "called_s", "started_s", "ended_s", "rows_per_s"]


def write_jobs_csv(path: Path, jobs: list[Job]) -> None:
    """The jobs: when each was begun (its file written from then), first publish, COMPLETED."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(JOB_COLUMNS)
        for job in jobs:
            writer.writerow(
                [
                    job.label,
                    job.rows,
                    f"{job.called:.2f}",
                    f"{job.started:.2f}",
                    f"{job.ended:.2f}",
                    f"{job.rate:.1f}",
                ]
            )


def replot(folder: Path) -> Path:
    """Draw p5_rss.png again from the run's p5_rss.csv and p5_jobs.csv in ``folder``."""
    sampler = Sampler({})
    with (folder / "p5_rss.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            sampler.samples.append(
                Sample(
                    float(row["elapsed_s"]),
                    row["job"],
                    row["service"],
                    int(row["pid"]),
                    float(row["rss_mb"]),
                    float(row["hwm_mb"]),
                )
            )
    jobs = []
    with (folder / "p5_jobs.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            job = Job(row["job"], int(row["rows"]), float(row["called_s"]))
            job.started, job.ended, job.rate = (
                float(row["started_s"]),
                float(row["ended_s"]),
                float(row["rows_per_s"]),
            )
            jobs.append(job)
    png = folder / "p5_rss.png"
    write_plot(png, sampler, jobs, [job for job in jobs if not job.label.startswith(WARM_UP)])
    return png


def write_plot(path: Path, sampler: Sampler, jobs: list[Job], sized: list[Job]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (over_time, by_size) = plt.subplots(
        2, 1, figsize=(11, 8), gridspec_kw={"height_ratios": [3, 2]}, constrained_layout=True
    )
    colours = {"identity": "tab:blue", "import": "tab:orange"}
    for service in SERVICES:
        points = [(s.elapsed, s.rss_mb) for s in sampler.samples if s.service == service]
        if points:
            xs, ys = zip(*points, strict=True)
            over_time.plot(xs, ys, label=f"{service} service RSS", color=colours[service], linewidth=1.4)
    over_time.axhline(RSS_LIMIT_MB, color="tab:red", linestyle="--", linewidth=1, label="150 MB (P5 limit)")
    # a job too short to hold its label gets it on a line of its own above the others' labels
    span = max([1.0, *(job.ended for job in jobs), *(s.elapsed for s in sampler.samples)])
    narrow = [job for job in jobs if job.ended - job.called < 0.12 * span]
    base = max([RSS_LIMIT_MB, *(s.rss_mb for s in sampler.samples)]) * 1.12
    step = base * 0.045
    top = base + step * len(narrow)
    for n, job in enumerate(jobs):
        over_time.axvspan(job.called, job.started, color="0.92", linewidth=0)
        over_time.axvspan(job.started, job.ended, color="tab:green" if n % 2 else "tab:olive", alpha=0.12)
        over_time.axvline(job.started, color="0.5", linewidth=0.6)
        if job in narrow:
            k = narrow.index(job)
            over_time.text(
                job.started + 0.004 * span,
                top - step * (k + 0.5),
                f"{job.label}: {job.rate:,.0f} rows/s",
                ha="left",
                va="center",
                fontsize=8,
            )
        else:
            over_time.text(
                (job.started + job.ended) / 2,
                top * 0.98,
                f"{job.label}\n{job.rate:,.0f} rows/s",
                ha="center",
                va="top",
                fontsize=8,
            )
    over_time.set_ylim(0, top)
    over_time.set_xlabel(
        "time since both services serve (s); shaded: publish → COMPLETED, grey: file written"
    )
    over_time.set_ylabel("RSS (MB)")
    over_time.set_title(
        "P5: services' RSS, sampled every second, during jobs of growing size (100 rows/message)"
    )
    over_time.legend(loc="lower right", fontsize=8)
    over_time.grid(alpha=0.3)

    sizes = [job.rows for job in sized]
    by_size.plot(sizes, [job.rate for job in sized], marker="o", color="tab:green", label="rows/s")
    by_size.set_xscale("log")
    by_size.set_xlabel("job size (rows)")
    by_size.set_ylabel("rows/s (publish → COMPLETED)")
    by_size.set_ylim(0, max(job.rate for job in sized) * 1.5)  # under the 150 MB line of the right axis
    by_size.set_xticks(sizes, [size_label(n) for n in sizes])
    by_size.minorticks_off()
    by_size.grid(alpha=0.3)
    memory = by_size.twinx()
    for service in SERVICES:
        peaks = [sampler.peak(service, job.called, job.ended) for job in sized]
        memory.plot(
            sizes, peaks, marker="s", linestyle=":", color=colours[service], label=f"peak RSS {service}"
        )
    memory.axhline(RSS_LIMIT_MB, color="tab:red", linestyle="--", linewidth=1)
    memory.set_ylim(0, top)
    memory.set_ylabel("peak RSS in the job (MB)")
    lines = by_size.get_legend_handles_labels()[0] + memory.get_legend_handles_labels()[0]
    by_size.legend(lines, [str(line.get_label()) for line in lines], loc="lower left", fontsize=8)
    figure.savefig(path, dpi=110)
    plt.close(figure)


async def main(sizes: list[int], warm_up: int, out: Path, interval: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[Job] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack() as stack:
            pids = stack.pids()
            print(f"identity pid {pids['identity']}, import pid {pids['import']}; RSS every {interval:g} s")
            with Sampler(pids, interval) as sampler:
                if warm_up:
                    job = await run_job(
                        stack, sampler, f"{WARM_UP} {size_label(warm_up)}", warm_up, Path(tmp)
                    )
                    jobs.append(job)
                    print(f"warm-up {warm_up:,} rows: {job.rate:,.0f} rows/s", flush=True)
                for rows in sizes:
                    job = await run_job(stack, sampler, size_label(rows), rows, Path(tmp))
                    jobs.append(job)
                    peaks = ", ".join(
                        f"{service} {sampler.peak(service, job.called, job.ended):.0f} MB"
                        for service in SERVICES
                    )
                    print(
                        f"{rows:,} rows: {job.rate:,.0f} rows/s in {job.ended - job.started:.1f} s; "
                        f"peak RSS {peaks}; PostgreSQL checkpoints {job.checkpoints[0]}"
                        f" ({job.checkpoints[1]} requested by WAL volume), WAL {job.wal_bytes / rows / 1024:.1f} kB a row",
                        flush=True,
                    )
    sized = jobs[1:] if warm_up else jobs
    csv_path, png_path = out / "p5_rss.csv", out / "p5_rss.png"
    write_csv(csv_path, sampler)
    write_jobs_csv(out / "p5_jobs.csv", jobs)
    write_plot(png_path, sampler, jobs, sized)
    counts = ", ".join(
        f"{service} {sum(s.service == service for s in sampler.samples)}" for service in SERVICES
    )
    print(f"samples: {counts}; wrote {csv_path}, {out / 'p5_jobs.csv'} and {png_path}")
    high_water = ", ".join(f"{service} {sampler.hwm(service):.0f} MB" for service in SERVICES)
    print(f"kernel high-water mark (VmHWM) at the end: {high_water}")
    largest, previous = sized[-1], sized[-2]
    tenths = ", ".join(f"{rate:,.0f}" for rate in largest.tenths())
    print(f"{size_label(largest.rows)}-row job by tenths of its rows (rows/s): {tenths}")
    print(
        f"{size_label(largest.rows)}-row job {largest.rate:,.0f} rows/s; "
        f"{size_label(previous.rows)}-row job {previous.rate:,.0f} rows/s"
    )
    peaks = ", ".join(f"{service} {sampler.peak(service):.0f} MB" for service in SERVICES)
    print(
        f"P5 {size_label(largest.rows)}-row rate / {size_label(previous.rows)}-row rate: "
        f"{largest.rate / previous.rate:.2f} (target >= 0.9); peak RSS {peaks} (target < 150 MB)"
    )


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    if len(sizes) < 2 or sizes[0] <= 0:
        raise argparse.ArgumentTypeError("need at least two positive sizes, e.g. 10000,100000,1000000")
    return sizes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=parse_sizes, help="comma-separated row counts (default 10k,100k,1M)")
    parser.add_argument("--quick", action="store_true", help="sizes 2000,5000,10000 into a temp folder")
    parser.add_argument(
        "--out", type=Path, help=f"folder for p5_rss.csv and p5_rss.png (default {DEFAULT_OUT})"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--warm-up", type=int, help="rows of the warm-up job (0: none)")
    parser.add_argument(
        "--replot", type=Path, metavar="DIR", help="only draw DIR/p5_rss.png again from DIR's two CSVs"
    )
    args = parser.parse_args()
    if args.replot:
        print(f"wrote {replot(args.replot)}")
        raise SystemExit(0)
    sizes = args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    warm_up = (
        args.warm_up if args.warm_up is not None else (QUICK_WARM_UP_ROWS if args.quick else WARM_UP_ROWS)
    )
    out = args.out or (Path(tempfile.mkdtemp(prefix="rollcall-p5-")) if args.quick else DEFAULT_OUT)
    print(
        f"P5: sizes {', '.join(f'{n:,}' for n in sizes)} rows at {ROWS_PER_MESSAGE} rows/message, warm-up {warm_up:,}"
    )
    asyncio.run(main(sizes, warm_up, out, args.interval))
