"""Prefetch sized by rows, not messages: connectors send one row a message or up to 1000.

RabbitMQ counts prefetch in messages. A fixed count is either too small for one-row messages (the
consumer starves) or far too large for 1000-row chunks (hundreds of megabytes held in memory). The
consumer starts small, watches how many rows messages carry, and re-subscribes with a prefetch
that keeps about ``ROWS_IN_FLIGHT`` rows delivered and unsettled, between ``MIN_PREFETCH`` and the
configured ``ROLLCALL_IMPORT_PREFETCH``.
"""

from __future__ import annotations

from dataclasses import dataclass

ROWS_IN_FLIGHT = 20_000
MIN_PREFETCH = 8
START_PREFETCH = 20
SAMPLE_MESSAGES = 20


@dataclass
class PrefetchSizer:
    max_prefetch: int
    current: int = 0
    _messages: int = 0
    _rows: int = 0

    def __post_init__(self) -> None:
        self.current = max(1, min(self.max_prefetch, START_PREFETCH))

    def observe(self, rows: int) -> int | None:
        """Counts one message; returns a new prefetch when the current one is off by 2x or more."""
        self._messages += 1
        self._rows += max(rows, 1)
        if self._messages < SAMPLE_MESSAGES:
            return None
        average = self._rows / self._messages
        self._messages = self._rows = 0
        wanted = max(MIN_PREFETCH, min(self.max_prefetch, int(ROWS_IN_FLIGHT / average)))
        if wanted >= 2 * self.current or 2 * wanted <= self.current:
            self.current = wanted
            return wanted
        return None
