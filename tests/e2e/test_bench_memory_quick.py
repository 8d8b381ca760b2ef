"""The P5 benchmark's smoke test: ``python -m bench.memory_growth --quick`` runs against the suite's
PostgreSQL and RabbitMQ, prints its P5 line last and writes the RSS samples (both services) and the
jobs as CSV and the plot as PNG, which ``--replot`` draws again from the CSVs. Its figures are not
checked: this machine's timing is not the benchmark's."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
P5_LINE = re.compile(
    r"^P5 10k-row rate / 5k-row rate: \d+\.\d\d \(target >= 0\.9\); "
    r"peak RSS identity \d+ MB, import \d+ MB \(target < 150 MB\)$"
)


def test_memory_growth_quick(tmp_path: Path, pg_server_url: str, amqp_url: str) -> None:
    out = tmp_path / "p5"
    env = {**os.environ, "ROLLCALL_TEST_DATABASE_URL": pg_server_url, "ROLLCALL_TEST_AMQP_URL": amqp_url}
    result = subprocess.run(
        [sys.executable, "-m", "bench.memory_growth", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard, not a timing assertion
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert P5_LINE.match(lines[-1]), result.stdout
    for size in ("2,000", "5,000", "10,000"):
        assert any(line.startswith(f"{size} rows: ") and "rows/s" in line for line in lines[:-1]), (
            result.stdout
        )
    checkpoints = re.compile(
        r"; PostgreSQL checkpoints \d+ \(\d+ requested by WAL volume\), WAL [\d.]+ kB a row$"
    )
    assert all(checkpoints.search(line) for line in lines if re.match(r"[\d,]+ rows: ", line)), result.stdout
    tenths = [line for line in lines if line.startswith("10k-row job by tenths of its rows (rows/s): ")]
    assert len(tenths) == 1 and tenths[0].split(": ")[1], result.stdout

    png = out / "p5_rss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (out / "p5_rss.csv").open(newline="") as handle:
        samples = list(csv.DictReader(handle))
    assert {"elapsed_s", "job", "service", "pid", "rss_mb", "hwm_mb"} <= set(samples[0])
    for service in ("identity", "import"):
        rss = [float(s["rss_mb"]) for s in samples if s["service"] == service]
        assert len(rss) >= 2 and all(value > 0 for value in rss), service
    assert {"2k", "5k", "10k"} <= {s["job"] for s in samples}
    with (out / "p5_jobs.csv").open(newline="") as handle:
        jobs = list(csv.DictReader(handle))
    assert [job["job"] for job in jobs] == ["warm-up 500", "2k", "5k", "10k"]

    png.unlink()
    replot = subprocess.run(
        [sys.executable, "-m", "bench.memory_growth", "--replot", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replot.returncode == 0, replot.stdout + replot.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
