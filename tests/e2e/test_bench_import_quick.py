"""The import benchmarks run: P1/P2 (``bench.import_throughput``), P6 (``bench.guarded_jobs``) and
the profiling scripts (``bench.cpu_per_row``, ``bench.explain_batch``) with ``--quick``, as
``make bench BENCH_FLAGS=--quick`` runs them, each in a process of its own on the local PostgreSQL
and RabbitMQ. A smoke test of the scripts: exit 0, each baseline's and the system's figures printed,
the ratio lines last. No timing is asserted (a quick run's figures on a shared machine mean nothing)."""

from __future__ import annotations

import re

from tests.e2e.bench_support import RATIO, run_bench

RATE = r"[\d,]+"


def test_import_throughput_prints_both_baselines_then_p1_and_p2_ratios_last() -> None:
    lines = run_bench("bench.import_throughput")
    text = "\n".join(lines)
    copy = r"raw executemany upsert into a copy of users \(all its indexes\)"
    bracket = rf"\(before {RATE}, after {RATE}\)"
    assert re.search(rf"^P1 baseline: {copy}: {RATE} rows/s {bracket}$", text, re.M), text
    assert re.search(rf"^P1 system: end to end, 100 rows/message: {RATE} rows/s$", text, re.M), text
    consume = r"raw aio-pika consume\+ack, quorum queue"
    assert re.search(rf"^P2 baseline: {consume}: {RATE} msg/s {bracket}$", text, re.M), text
    assert re.search(rf"^P2 system: end to end, 1 row/message: {RATE} rows/s$", text, re.M), text
    ceiling = rf"^P2 ceiling: the CLI publishing while a bare consumer acks, no services: {RATE} rows/s"
    share = rf"= {RATIO} x the baseline \(end to end is {RATIO} of it\)$"
    assert re.search(rf"{ceiling} {share}", text, re.M), text
    assert re.fullmatch(rf"P1 ratio {RATIO} \(target >= 0\.6\)", lines[-2]), lines[-2:]
    assert re.fullmatch(rf"P2 ratio {RATIO} \(target >= 0\.6\)", lines[-1]), lines[-1:]


def test_guarded_jobs_prints_both_p6_ratios_last() -> None:
    lines = run_bench("bench.guarded_jobs")
    assert re.fullmatch(rf"P6 \(a\) sensitive job ratio {RATIO} \(target >= 0\.5\)", lines[-2]), lines[-2:]
    assert re.fullmatch(rf"P6 \(b\) full roster ratio {RATIO} \(target >= 0\.5\)", lines[-1]), lines[-1:]


def test_cpu_per_row_splits_a_rows_cpu_over_the_processes() -> None:
    text = "\n".join(run_bench("bench.cpu_per_row"))
    for process in ("import service", "identity service", "PostgreSQL (identity's backends)", "publisher"):
        assert re.search(rf"^  {re.escape(process)}.* [\d.]+ µs/row$", text, re.M), (process, text)
    assert re.search(r"^P1 baseline \(raw upsert into a copy of users\): [\d,]+ rows/s$", text, re.M), text
    assert re.search(rf"^CPU per row, end to end / baseline: {RATIO}$", text, re.M), text


def test_explain_batch_shows_every_statement_of_a_created_and_an_unchanged_batch() -> None:
    text = "\n".join(run_bench("bench.explain_batch"))
    created, unchanged = text.split("== a batch of")[1].split("== the same")
    assert re.search(r"x1 .* INSERT INTO users", created), created
    assert re.search(r"x200 .*schools", created), created  # the foreign key's check, once per new student
    assert re.search(r"x1 .* UPDATE users", unchanged), unchanged
    assert "INSERT INTO users" not in unchanged


def test_index_costs_measures_the_floor_with_and_without_the_expensive_indexes() -> None:
    lines = run_bench("bench.index_costs")
    measured = [line for line in lines if " rows/s " in line]
    assert len(measured) == 5, lines
    assert measured[0].startswith("all the users table's indexes"), measured
    assert measured[0].endswith("1.00 x the full table"), measured
    assert all(re.search(rf"{RATE} rows/s  {RATIO} x the full table$", line) for line in measured), measured
