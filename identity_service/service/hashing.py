"""argon2id off the event loop: hashing is CPU- and memory-heavy, so it runs in worker threads, a few
at a time (each hash holds its memory cost, 64 MiB by default, while it runs)."""

from __future__ import annotations

import asyncio
import os

from identity_service.domain.passwords import PasswordHasher


class AsyncPasswordHasher:
    """``PasswordHasher`` for async callers, with at most ``concurrency`` hashes at once."""

    def __init__(self, hasher: PasswordHasher | None = None, concurrency: int | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency or min(4, os.cpu_count() or 1))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """False for a wrong password or no hash (spending the time of a real check either way)."""
        async with self._slots:
            if stored_hash is None:
                return await asyncio.to_thread(self._hasher.verify_against_dummy, password)
            return await asyncio.to_thread(self._hasher.verify, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when ``stored_hash`` was made with other parameters than the current ones."""
        return self._hasher.needs_rehash(stored_hash)
