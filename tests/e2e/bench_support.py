"""Running a bench script as ``make bench BENCH_FLAGS=--quick`` does, for the benches' smoke tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RATIO = r"\d+\.\d\d"


def run_bench(module: str, timeout: float = 420) -> list[str]:
    """The non-blank lines ``python -m <module> --quick`` printed; fails unless it exited 0."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang guard, not a timing assertion
        check=False,
    )
    assert done.returncode == 0, f"{module} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return [line for line in done.stdout.splitlines() if line.strip()]
