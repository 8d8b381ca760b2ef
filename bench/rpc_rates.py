"""P3 and P4 (operations.md): identity RPC rates under 64 concurrent calls against a bare echo.

P3: GetUser — rate ≥ 0.75 × echo, p99 ≤ 2 × echo's p99.
P4: SignUpStudent — rate ≥ 0.4 × echo (each sign-up hashes a password with argon2id).

``python -m bench.rpc_rates [--seconds 5]`` — both services run as their own processes; the load
comes from this process. Prints the ratios last.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from bench.stack import free_port, running_stack
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res

CONCURRENCY = 64
Call = Callable[[int], Awaitable[object]]


async def drive(call: Call, seconds: float) -> tuple[float, float]:
    """(calls per second, p99 latency in ms) of ``CONCURRENCY`` loops calling for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop(worker: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call(worker * 1_000_000 + n)
            latencies.append(time.perf_counter() - started)
            n += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return len(latencies) / elapsed, latencies[int(len(latencies) * 0.99)] * 1000


async def echo_rate(seconds: float) -> tuple[float, float]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("echo_server.py")), str(port)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary("/bench.Echo/Echo")
            payload = uuid.uuid4().bytes * 8
            return await drive(lambda _: echo(payload), seconds)
    finally:
        process.terminate()
        process.wait()


async def main(seconds: float) -> None:
    base_rate, base_p99 = await echo_rate(seconds)
    print(f"echo: {base_rate:,.0f} calls/s, p99 {base_p99:.2f} ms")
    async with running_stack() as stack, grpc.aio.insecure_channel(stack.identity_addr) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        md = stack.metadata()
        school = await stub.CreateSchool(
            pb.CreateSchoolRequest(name="Bench", email_domains=["b.edu"]), metadata=md
        )
        user = await stub.CreateUser(
            pb.CreateUserRequest(user_type=res.USER_TYPE_STUDENT, school_id=school.id, email="x@b.edu"),
            metadata=md,
        )
        get_rate, get_p99 = await drive(
            lambda _: stub.GetUser(pb.GetUserRequest(id=user.id), metadata=md), seconds
        )
        print(f"GetUser: {get_rate:,.0f} calls/s, p99 {get_p99:.2f} ms")
        tag = uuid.uuid4().hex[:6]
        sign_rate, sign_p99 = await drive(
            lambda n: stub.SignUpStudent(
                pb.SignUpStudentRequest(
                    school_id=school.id,
                    email=f"s{tag}{n}@personal.example",
                    first_name="S",
                    last_name="U",
                    password="a long bench password",
                ),
                metadata=md,
            ),
            seconds,
        )
        print(f"SignUpStudent: {sign_rate:,.0f} calls/s, p99 {sign_p99:.2f} ms")
    print(
        f"P3 GetUser rate ratio {get_rate / base_rate:.2f} (target >= 0.75); p99 ratio {get_p99 / base_p99:.2f} (target <= 2)"
    )
    print(f"P4 SignUpStudent rate ratio {sign_rate / base_rate:.3f} (target >= 0.4)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args().seconds))
