"""argon2id off the event loop, in two lanes: sign-in never waits behind sign-up hashing.

Hashing is CPU- and memory-heavy (each hash holds its memory cost, 64 MiB by default, while it runs),
so it runs in worker threads, a few at a time. A storm of sign-ups must not slow sign-in (P4), so:

- the **hash lane** (``hash``: sign-up, a password set when an email change is confirmed) has its
  own slots and its own threads, and on Linux those threads run at a lower CPU priority (``nice``):
  while sign-in work is waiting for a core, hashing gives it up; when nobody signs in, hashing has
  every core to itself;
- the **sign-in lane** (``verify``, and ``rehash`` of a password just verified with old parameters)
  has its own slots and threads at normal priority, so a sign-in waits only for other sign-ins.

argon2's own threads (its ``parallelism`` lanes) are created by the worker thread and inherit its
priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from identity_service.domain.passwords import PasswordHasher

T = TypeVar("T")


def default_slots() -> int:
    """Slots of a lane when the setting is 0: the CPUs, at most 4."""
    return min(4, os.cpu_count() or 1)


def _lower_priority(nice: int) -> Callable[[], None]:
    def initializer() -> None:
        if nice <= 0 or sys.platform != "linux":
            return
        # On Linux the nice value is per thread: PRIO_PROCESS with a thread id changes this thread only.
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))

    return initializer


class _Lane:
    """At most ``slots`` calls at once (first come, first served), on ``slots`` threads of its own."""

    def __init__(self, name: str, slots: int, nice: int = 0) -> None:
        self.slots = slots
        self._gate = asyncio.Semaphore(slots)
        self._threads = ThreadPoolExecutor(slots, thread_name_prefix=name, initializer=_lower_priority(nice))

    async def run(self, work: Callable[..., T], *args: object) -> T:
        async with self._gate:
            return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


class AsyncPasswordHasher:
    """``PasswordHasher`` for async callers: ``hash_slots`` hashes and ``sign_in_slots`` sign-in checks
    at once, each lane on its own threads (0 or None: ``default_slots()``)."""

    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        hash_slots: int | None = None,
        sign_in_slots: int | None = None,
        hash_nice: int = 10,
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        self._hashing = _Lane("argon2-hash", hash_slots or default_slots(), nice=hash_nice)
        self._signing_in = _Lane("argon2-sign-in", sign_in_slots or default_slots())

    @property
    def hash_slots(self) -> int:
        return self._hashing.slots

    @property
    def sign_in_slots(self) -> int:
        return self._signing_in.slots

    async def hash(self, password: str) -> str:
        """A new hash of a new password (sign-up, password set): the hash lane."""
        return await self._hashing.run(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Sign-in lane. False for a wrong password or no hash (spending the time of a real check
        either way)."""
        if stored_hash is None:
            return await self._signing_in.run(self._hasher.verify_against_dummy, password)
        return await self._signing_in.run(self._hasher.verify, stored_hash, password)

    async def rehash(self, password: str) -> str:
        """A new hash of a password just verified at sign-in (old parameters): the sign-in lane, since
        the sign-in waits for it."""
        return await self._signing_in.run(self._hasher.hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when ``stored_hash`` was made with other parameters than the current ones."""
        return self._hasher.needs_rehash(stored_hash)

    def close(self) -> None:
        """Stop both lanes' threads (work not started is dropped)."""
        self._hashing.close()
        self._signing_in.close()
