"""P4's second half (operations.md): Authenticate p99 under a sign-up storm ≤ 3 × its unloaded p99.

``python -m bench.signin_under_storm [--storm 500] [--sign-ins 120] [--quick]`` — the identity service runs as
its own process at production argon2id parameters; this process first signs in ``--sign-ins`` times
(``SIGN_IN_CONCURRENCY`` at once) on a quiet service, then starts ``--storm`` sign-up loops (each
signs up a new student as soon as its last sign-up returned, so ``--storm`` sign-ups are always in
flight), waits until the service is saturated, and signs in the same number of times again. Prints
both p99s, the sign-up rate during the storm, and the ratio last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid

import grpc

from bench.stack import running_stack
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc

PASSWORD = "a long bench password"  # noqa: S105 - the benchmark's own accounts
SIGN_IN_CONCURRENCY = 2
ACCOUNTS = 8
WARM_UP_SIGN_UPS = 20  # sign-ups the storm completes before sign-ins are measured under it
QUICK = {"storm": 8, "sign_ins": 6, "warm_up": 2}  # --quick: a smoke test of the script


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def sign_ins(
    stub: pb_grpc.IdentityServiceStub, md: object, emails: list[str], count: int
) -> list[float]:
    """Latencies (s) of ``count`` successful Authenticate calls, ``SIGN_IN_CONCURRENCY`` at once."""
    latencies: list[float] = []
    next_call = iter(range(count))

    async def worker() -> None:
        for n in next_call:
            started = time.perf_counter()
            await stub.Authenticate(
                pb.AuthenticateRequest(email=emails[n % len(emails)], password=PASSWORD), metadata=md
            )
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(SIGN_IN_CONCURRENCY)))
    return latencies


async def main(storm: int, count: int, warm_up: int = WARM_UP_SIGN_UPS) -> None:
    async with (
        running_stack(with_import=False) as stack,
        grpc.aio.insecure_channel(stack.identity_addr) as channel,
    ):
        stub = pb_grpc.IdentityServiceStub(channel)
        md = stack.metadata()
        school = await stub.CreateSchool(
            pb.CreateSchoolRequest(name="Bench", email_domains=["b.edu"]), metadata=md
        )
        tag = uuid.uuid4().hex[:6]
        emails = []
        for n in range(ACCOUNTS):
            email = f"member{tag}{n}@personal.example"
            user = await stub.SignUpStudent(
                pb.SignUpStudentRequest(
                    school_id=school.id, email=email, first_name="M", last_name="B", password=PASSWORD
                ),
                metadata=md,
            )
            await stub.ApproveStudent(pb.ApproveStudentRequest(user_id=user.id), metadata=md)
            emails.append(email)
        await sign_ins(stub, md, emails, 10)  # warm the connection, the pool and both lanes

        quiet = await sign_ins(stub, md, emails, count)
        quiet_p99 = p99(quiet)
        print(f"Authenticate unloaded: p99 {quiet_p99:.1f} ms over {len(quiet)} calls", flush=True)

        stop = asyncio.Event()
        signed_up = 0

        async def sign_up_loop(worker: int) -> None:
            nonlocal signed_up
            n = 0
            while not stop.is_set():
                await stub.SignUpStudent(
                    pb.SignUpStudentRequest(
                        school_id=school.id,
                        email=f"storm{tag}-{worker}-{n}@personal.example",
                        first_name="S",
                        last_name="U",
                        password=PASSWORD,
                    ),
                    metadata=md,
                )
                signed_up += 1
                n += 1

        loops = [asyncio.create_task(sign_up_loop(w)) for w in range(storm)]
        try:
            while signed_up < warm_up:
                await asyncio.sleep(0.05)
            before, started = signed_up, time.perf_counter()
            loaded = await sign_ins(stub, md, emails, count)
            storm_rate = (signed_up - before) / (time.perf_counter() - started)
        finally:
            stop.set()
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await task
        loaded_p99 = p99(loaded)
        print(
            f"Authenticate under {storm} concurrent sign-ups: p99 {loaded_p99:.1f} ms over {len(loaded)} calls"
            f" (sign-ups meanwhile: {storm_rate:.1f}/s)"
        )
    print(f"P4 sign-in p99 under storm / unloaded: {loaded_p99 / quiet_p99:.2f} (target <= 3)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--storm", type=int, default=500)
    parser.add_argument("--sign-ins", type=int, default=120)
    parser.add_argument("--quick", action="store_true", help="a smoke test of the script (small storm)")
    args = parser.parse_args()
    if args.quick:
        asyncio.run(main(QUICK["storm"], QUICK["sign_ins"], QUICK["warm_up"]))
    else:
        asyncio.run(main(args.storm, args.sign_ins))
