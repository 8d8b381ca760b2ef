"""``make bench``: every benchmark, one after the other; each prints its ratio last."""

from __future__ import annotations

import subprocess
import sys

BENCHES = [["bench.import_throughput"], ["bench.signin_under_storm"], ["bench.guarded_jobs"]]


def main() -> None:
    for bench in BENCHES:
        print(f"== {' '.join(bench)}", flush=True)
        subprocess.run([sys.executable, "-m", *bench, *sys.argv[1:]], check=True)


if __name__ == "__main__":
    main()
