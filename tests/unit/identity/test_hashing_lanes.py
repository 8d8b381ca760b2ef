"""The two argon2id lanes: their own threads, and hashing at a lower CPU priority than sign-in."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from identity_service.domain.passwords import PasswordHasher
from identity_service.service.hashing import AsyncPasswordHasher


class WhereHasher(PasswordHasher):
    """Answers where it ran instead of hashing: the thread's name and its nice value."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost_kib=8, parallelism=1)

    def hash(self, password: str) -> str:
        return _where()

    def verify(self, stored_hash: str, password: str) -> bool:
        raise AssertionError(_where())


def _where() -> str:
    nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if sys.platform == "linux" else 0
    return f"{threading.current_thread().name}|{nice}"


async def test_each_lane_runs_on_its_own_threads() -> None:
    hasher = AsyncPasswordHasher(WhereHasher(), hash_slots=2, sign_in_slots=3, hash_nice=0)
    try:
        assert (hasher.hash_slots, hasher.sign_in_slots) == (2, 3)
        assert (await hasher.hash("pw")).startswith("argon2-hash")
        assert (await hasher.rehash("pw")).startswith("argon2-sign-in")
        with pytest.raises(AssertionError, match=r"^argon2-sign-in"):
            await hasher.verify("$argon2id$stored", "pw")
    finally:
        hasher.close()


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are set on Linux only")
async def test_hashing_threads_yield_the_cpu_to_sign_in() -> None:
    hasher = AsyncPasswordHasher(WhereHasher(), hash_slots=1, sign_in_slots=1, hash_nice=5)
    try:
        own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        hashing_nice = int((await hasher.hash("pw")).split("|")[1])
        sign_in_nice = int((await hasher.rehash("pw")).split("|")[1])
        assert sign_in_nice == own
        assert hashing_nice == min(19, own + 5)
        assert (
            os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
        )  # the loop's thread untouched
    finally:
        hasher.close()
