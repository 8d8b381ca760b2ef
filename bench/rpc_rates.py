"""P3 and P4 (operations.md): identity RPC rates under 64 concurrent calls against honest floors.

P3: ``GetUser`` — rate ≥ 0.8 × the floor's, p99 ≤ 1.5 × the floor's. The floor
(``bench/floor_server.py``) is a bare grpc.aio servicer on the same event loop answering the real
``GetUser`` with one asyncpg pool fetch by primary key from the service's own database.
P4: ``SignUpStudent`` — rate ≥ 0.8 × raw argon2id hashes/s at the service's parameters
(``PasswordHasher()``'s defaults) on as many threads as its hash lane has (``hash_slots``; at the
lane's ``nice``), hashing flat out for the same time. (P4's sign-in p99 under a sign-up storm:
``bench/signin_under_storm.py``.)

``python -m bench.rpc_rates [--seconds 5] [--rounds 3] [--signup-seconds 10] [--quick]`` — the
service and the floor run as their own processes on the same database; the load comes from this
process with the same client code for both (one channel, ``CONCURRENCY`` loops). Floor and service
are measured in turns, ``--rounds`` times each (P4: the hash floor, then the sign-ups); each
round gives a ratio of two measurements taken one after the other, and the median of the rounds'
ratios is the figure (the machine's load drifts). Prints the floors' absolute figures (medians and
each round's), the service's, the rounds' ratios, then the P3 and P4 ratios last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.stack import PG_URL, free_port, running_stack
from identity_service.domain.passwords import PasswordHasher
from identity_service.service.hashing import _lower_priority, default_slots
from shared import event_loop
from shared.pg import with_database
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.settings import load_settings

CONCURRENCY = 64
WARM_UP_SECONDS = 1.0
PASSWORD = "a long bench password"  # noqa: S105 - the benchmark's own accounts
Call = Callable[[int], Awaitable[object]]


@dataclass(frozen=True)
class Rate:
    per_second: float
    p99_ms: float
    calls: int
    server_cpu_us: float = float("nan")  # the server process's CPU time (user + system) per call

    def __str__(self) -> str:
        return f"{self.per_second:,.0f}/s p99 {self.p99_ms:.2f} ms {self.server_cpu_us:,.0f} µs CPU/call"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, every thread (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else float("nan")


async def drive(
    call: Call,
    seconds: float,
    warm_up: float = WARM_UP_SECONDS,
    pid: int | None = None,
    cancel_at_end: bool = False,
) -> Rate:
    """``CONCURRENCY`` loops calling back to back; the calls that complete within the ``seconds``
    after ``warm_up`` count (rate, and p99 of their latencies). Calls still in flight at the end are
    not counted: waited for, or cancelled with ``cancel_at_end`` (sign-ups: 64 queued hashes would
    take longer than the window to drain). A call of a saturated service may have started before
    the window: sign-ups queue for the hash lane, so their latency is about ``CONCURRENCY`` / rate.
    With ``pid``, the CPU time that server process spent in the window, per call counted."""
    latencies: list[float] = []
    start = time.perf_counter() + warm_up
    end = start + seconds

    async def loop(worker: int) -> None:
        n = 0
        while (started := time.perf_counter()) < end:
            await call(worker * 1_000_000 + n)
            done = time.perf_counter()
            if start <= done <= end:
                latencies.append(done - started)
            n += 1

    loops = [asyncio.create_task(loop(w)) for w in range(CONCURRENCY)]
    await asyncio.sleep(start - time.perf_counter())
    before = cpu_seconds(pid) if pid else 0.0
    await asyncio.sleep(end - time.perf_counter())
    cpu = cpu_seconds(pid) - before if pid else float("nan")
    calls = len(latencies)
    if cancel_at_end:
        for task in loops:
            task.cancel()
    for task in loops:
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await task
    return Rate(calls / seconds, p99(latencies), calls, cpu / calls * 1e6 if calls else float("nan"))


def median(rates: list[Rate]) -> Rate:
    return Rate(
        statistics.median(r.per_second for r in rates),
        statistics.median(r.p99_ms for r in rates),
        sum(r.calls for r in rates),
        statistics.median(r.server_cpu_us for r in rates),
    )


def hash_threads() -> tuple[int, int]:
    """The service's hash lane: (threads, nice) from the same settings ``bootstrap`` reads."""
    settings = load_settings()
    return settings.password_hash_slots or default_slots(), settings.password_hash_nice


def raw_hash_rate(seconds: float) -> float:
    """argon2id hashes/s of ``PasswordHasher()`` (the service's parameters) on the hash lane's
    number of threads at its priority, each hashing back to back for ``seconds``."""
    threads, nice = hash_threads()
    hasher = PasswordHasher()
    count = 0
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def work() -> None:
        nonlocal count
        while time.perf_counter() < end:
            hasher.hash(PASSWORD)
            if time.perf_counter() <= end:
                with lock:
                    count += 1

    with ThreadPoolExecutor(threads, initializer=_lower_priority(nice)) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
    return count / seconds


async def main(seconds: float, rounds: int, signup_seconds: float) -> None:
    threads, nice = hash_threads()
    async with (
        running_stack(with_import=False) as stack,
        grpc.aio.insecure_channel(stack.identity_addr) as channel,
    ):
        stub = pb_grpc.IdentityServiceStub(channel)
        md = stack.metadata()
        school = await stub.CreateSchool(
            pb.CreateSchoolRequest(name="Bench", email_domains=["b.edu"]), metadata=md
        )
        user = await stub.CreateUser(
            pb.CreateUserRequest(
                user_type=res.USER_TYPE_STUDENT,
                school_id=school.id,
                email="x@b.edu",
                first_name="Bench",
                last_name="User",
            ),
            metadata=md,
        )
        floor_port = free_port()
        floor = subprocess.Popen(
            [sys.executable, "-m", "bench.floor_server"],
            env={
                **os.environ,
                "ROLLCALL_IDENTITY_DATABASE_URL": with_database(PG_URL, stack.identity_db),
                "ROLLCALL_IDENTITY_PORT": str(floor_port),
            },
            stdout=subprocess.PIPE,
        )
        try:
            assert floor.stdout is not None and floor.stdout.readline().strip() == b"ready"
            async with grpc.aio.insecure_channel(f"localhost:{floor_port}") as floor_channel:
                floor_stub = pb_grpc.IdentityServiceStub(floor_channel)
                floor_user = await floor_stub.GetUser(pb.GetUserRequest(id=user.id), metadata=md)
                served = await stub.GetUser(pb.GetUserRequest(id=user.id), metadata=md)
                assert floor_user == served, "the floor must answer what the service answers"
                floors, services = [], []
                for _ in range(rounds):
                    floors.append(
                        await drive(
                            lambda _: floor_stub.GetUser(pb.GetUserRequest(id=user.id), metadata=md),
                            seconds,
                            pid=floor.pid,
                        )
                    )
                    services.append(
                        await drive(
                            lambda _: stub.GetUser(pb.GetUserRequest(id=user.id), metadata=md),
                            seconds,
                            pid=stack.pids()["identity"],
                        )
                    )
        finally:
            floor.terminate()
            floor.wait()
        get_floor, get_rate = median(floors), median(services)
        print(
            f"floor: GetUser (bare servicer, one asyncpg fetch) {get_floor.per_second:,.0f} calls/s,"
            f" p99 {get_floor.p99_ms:.2f} ms, {get_floor.server_cpu_us:,.0f} µs server CPU/call"
            f" (median of {rounds}: {'; '.join(map(str, floors))})"
        )
        print(
            f"identity: GetUser {get_rate.per_second:,.0f} calls/s, p99 {get_rate.p99_ms:.2f} ms,"
            f" {get_rate.server_cpu_us:,.0f} µs server CPU/call (median of {rounds}: {'; '.join(map(str, services))})",
            flush=True,
        )

        tag = uuid.uuid4().hex[:6]
        hashes, sign_ups = [], []
        for turn in range(rounds):
            hashes.append(await asyncio.to_thread(raw_hash_rate, signup_seconds))
            sign_ups.append(
                await drive(
                    lambda n, turn=turn: stub.SignUpStudent(
                        pb.SignUpStudentRequest(
                            school_id=school.id,
                            email=f"s{tag}-{turn}-{n}@personal.example",
                            first_name="S",
                            last_name="U",
                            password=PASSWORD,
                        ),
                        metadata=md,
                    ),
                    signup_seconds,
                    warm_up=max(WARM_UP_SECONDS, 2.0),
                    pid=stack.pids()["identity"],
                    cancel_at_end=True,
                )
            )
            await asyncio.sleep(1)  # the hashes running when the sign-ups were cancelled end
        hash_rate, sign = statistics.median(hashes), median(sign_ups)
        print(
            f"floor: raw argon2id {hash_rate:,.2f} hashes/s on {threads} threads at nice {nice}"
            f" (median of {rounds}: {', '.join(f'{h:.2f}' for h in hashes)})"
        )
        print(
            f"identity: SignUpStudent {sign.per_second:,.2f} calls/s, p99 {sign.p99_ms:,.0f} ms,"
            f" {sign.server_cpu_us / 1000:,.0f} ms server CPU/call (median of {rounds}:"
            f" {', '.join(f'{r.per_second:.2f}/s' for r in sign_ups)})"
        )
    # each round's ratio is of two measurements taken one after the other (the machine's load drifts);
    # the figure is the median of the rounds' ratios
    rate_ratios = [s.per_second / f.per_second for f, s in zip(floors, services, strict=True)]
    p99_ratios = [s.p99_ms / f.p99_ms for f, s in zip(floors, services, strict=True)]
    sign_ratios = [s.per_second / h for h, s in zip(hashes, sign_ups, strict=True)]
    print(
        f"rounds: P3 rate {', '.join(f'{r:.2f}' for r in rate_ratios)}; P3 p99 {', '.join(f'{r:.2f}' for r in p99_ratios)};"
        f" P4 {', '.join(f'{r:.2f}' for r in sign_ratios)}"
    )
    print(
        f"P3 GetUser rate / floor {statistics.median(rate_ratios):.2f} (target >= 0.8);"
        f" p99 / floor {statistics.median(p99_ratios):.2f} (target <= 1.5)"
    )
    print(
        f"P4 SignUpStudent rate / raw argon2id hash rate {statistics.median(sign_ratios):.2f} (target >= 0.8)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each GetUser measurement")
    parser.add_argument("--rounds", type=int, default=3, help="GetUser measurements of each, in turns")
    parser.add_argument("--signup-seconds", type=float, default=10.0, help="the hash floor and SignUpStudent")
    parser.add_argument("--quick", action="store_true", help="a smoke test of the script (1 s, 1 round)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.signup_seconds = 1.0, 1, 2.0
    event_loop.run(main(args.seconds, args.rounds, args.signup_seconds))
