"""``make bench``: every benchmark of operations.md (P1-P6), one after the other; each prints its
baseline's absolute figure, the system's, and its ratio last.

``python -m bench.run_all [--quick]`` — ``--quick`` is passed to each bench (small sizes and
seconds: a smoke test of the scripts, not figures). Stops at the first bench that fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

BENCHES = [
    ("P1 P2", "bench.import_throughput"),
    ("P3 P4", "bench.rpc_rates"),
    ("P4 sign-in under a sign-up storm", "bench.signin_under_storm"),
    ("P5", "bench.memory_growth"),
    ("P6", "bench.guarded_jobs"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every bench (a smoke test)")
    args = parser.parse_args()
    extra = ["--quick"] if args.quick else []
    for targets, module in BENCHES:
        print(f"== {targets}: {module} {' '.join(extra)}".rstrip(), flush=True)
        subprocess.run([sys.executable, "-m", module, *extra], check=True)


if __name__ == "__main__":
    main()
