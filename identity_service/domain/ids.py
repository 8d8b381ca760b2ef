"""The ids identity gives what it creates (users, schools, email changes): time-ordered UUIDs,
version 7 of RFC 9562.

A version-4 id lands on a random leaf of every index keyed by it — the users table's primary key,
and, keyed by the user, the audit log's, the event outbox's and sequences', the recorded outcomes'.
Once those indexes outgrow memory each created student dirties a page of each, and a checkpoint
later writes each page in full to the WAL: a cost per row that grows with the tables (P5,
docs/performance.md). Version-7 ids made one after the other sort one after the other, so those
indexes fill at their right edge like a sequence's, and the id still says nothing a caller could
guess beyond its creation time to the millisecond, which ``create_time`` already tells.

Layout (RFC 9562 §5.7): 48 bits of Unix milliseconds, the version (7), 12 bits counting ids made
in the same millisecond (§6.2 method 1: the counter starts at 0 each millisecond; when it would
overflow, or the clock steps back, the last millisecond is carried on and advanced by one, so ids
made by one process always increase), the variant, 62 random bits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

_COUNTER_MAX = 0xFFF


class TimeOrderedIds:
    """A maker of version-7 UUIDs, as text, each greater than the one before it from this maker;
    the random bits come from one ``os.urandom`` call per ``per_refill`` ids (a syscall per id
    showed in profiles of 1000-row batches)."""

    def __init__(self, per_refill: int = 1024, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._size = 8 * per_refill
        self._pool = b""
        self._at = 0
        self._clock_ns = clock_ns
        self._ms = -1
        self._counter = 0

    def __call__(self) -> str:
        ms = self._clock_ns() // 1_000_000
        if ms > self._ms:
            self._ms, self._counter = ms, 0
        elif self._counter < _COUNTER_MAX:
            self._counter += 1
        else:
            self._ms, self._counter = self._ms + 1, 0
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(self._size), 0
        random = int.from_bytes(self._pool[self._at : self._at + 8])
        self._at += 8
        value = (
            (self._ms & 0xFFFF_FFFF_FFFF) << 80
            | 0x7 << 76
            | self._counter << 64
            | 0b10 << 62
            | random & 0x3FFF_FFFF_FFFF_FFFF
        )
        text = f"{value:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


new_id = TimeOrderedIds()
"""The one maker every identity use case calls for a new user's, school's or email change's id."""
