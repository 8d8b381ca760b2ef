"""The P3/P4 benchmarks run: ``python -m bench.rpc_rates --quick`` and ``python -m
bench.signin_under_storm --quick`` as ``make bench --quick`` runs them, each in a process of its own
on the local PostgreSQL and RabbitMQ. A smoke test of the scripts: exit 0, the floors' and the
service's figures printed, the ratio lines last. No timing is asserted (the figures of a quick run
on a shared machine mean nothing)."""

from __future__ import annotations

import re

from tests.e2e.bench_support import RATIO, run_bench


def test_rpc_rates_prints_floors_then_p3_and_p4_ratios_last() -> None:
    lines = run_bench("bench.rpc_rates")
    text = "\n".join(lines)
    assert re.search(r"^floor: raw argon2id [\d,.]+ hashes/s on \d+ threads at nice \d+", text, re.M), text
    assert re.search(r"^floor: GetUser .* [\d,]+ calls/s, p99 [\d.]+ ms", text, re.M), text
    assert re.search(r"^identity: GetUser [\d,]+ calls/s, p99 [\d.]+ ms", text, re.M), text
    assert re.search(r"^identity: SignUpStudent [\d,.]+ calls/s", text, re.M), text
    assert re.fullmatch(
        rf"P3 GetUser rate / floor {RATIO} \(target >= 0\.8\); p99 / floor {RATIO} \(target <= 1\.5\)",
        lines[-2],
    ), lines[-2:]
    assert re.fullmatch(
        rf"P4 SignUpStudent rate / raw argon2id hash rate {RATIO} \(target >= 0\.8\)", lines[-1]
    ), lines[-1:]


def test_signin_under_storm_prints_both_p99s_then_the_ratio_last() -> None:
    lines = run_bench("bench.signin_under_storm")
    text = "\n".join(lines)
    assert re.search(r"^Authenticate unloaded: p99 [\d.]+ ms", text, re.M), text
    assert re.search(r"^Authenticate under \d+ concurrent sign-ups: p99 [\d.]+ ms", text, re.M), text
    last = lines[-1]
    assert re.fullmatch(rf"P4 sign-in p99 under storm / unloaded: {RATIO} \(target <= 3\)", last), lines[-1:]
