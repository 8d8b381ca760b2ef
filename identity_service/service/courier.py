"""The courier: drains the outbox into the mail port (Kratos-style), as a use case over ports.

Loop: claim due messages (a lease, so couriers on several replicas never hold one message at once),
send each through the ``Mailer``, mark it SENT as soon as the server has accepted it, or count the
failure and retry later with capped exponential backoff and jitter, giving up (ABANDONED) after
``max_attempts``. Between rounds it waits for a wake-up (``MailNotices``: a use case committed a mail)
or the poll interval. A code mail gets its code right before the send (``code_mail.CodeIssuer``):
codes are never stored. Now and then it also does the housekeeping (``housekeeping.housekeep``).
Every database step is its own autocommit unit of work, so a claim or a SENT mark holds whatever
happens next. Logs carry the outbox id, kind and a masked address, never a body, a code or a full
address. Wired by ``bootstrap.build_courier``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from identity_service.service.code_mail import CodeIssuer
from identity_service.service.housekeeping import housekeep
from identity_service.service.ports import (
    Mailer,
    MailNotices,
    OutboxMessage,
    SendFailed,
    UnitOfWorkFactory,
)
from shared.logging import get_logger, mask_email

log = get_logger("courier")

EMAILS_SENT = Counter("rollcall_emails_sent_total", "Emails accepted by the SMTP server", ["kind"])
EMAILS_FAILED = Counter(
    "rollcall_emails_failed_total", "Failed email sends, by kind and whether given up", ["kind", "final"]
)


@dataclass(frozen=True)
class CourierConfig:
    """Tuning of the courier. ``lease_seconds`` must outlast a send, so it is kept above twice the
    SMTP timeout: a lease running out mid-send would let a second courier send the message too."""

    poll_interval: float = 2.0
    batch_size: int = 20
    send_timeout: float = 20.0
    lease_seconds: float = 60.0
    max_attempts: int = 10
    backoff_cap: float = 300.0
    housekeeping_interval: float = 600.0

    def __post_init__(self) -> None:
        if self.lease_seconds < 2 * self.send_timeout + 5:
            raise ValueError("lease_seconds must be at least 2 * send_timeout + 5")
        if self.max_attempts < 1 or self.batch_size < 1:
            raise ValueError("max_attempts and batch_size must be at least 1")


def retry_delay(failures: int, cap: float = 300.0, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after ``failures`` failed sends: 2^failures capped at ``cap``, then
    spread by ±20 % jitter so a backlog does not retry in lock-step."""
    base = min(cap, 2.0 ** min(failures, 30))
    return max(1.0, base * (0.8 + 0.4 * rand()))


def describe_failure(exc: BaseException) -> str:
    """What is kept of a failure that is not the mail server's: its type and message, addresses
    masked (the mailer describes its own, ``SendFailed.error``)."""
    return f"{type(exc).__name__}: {mask_email(str(exc))}"[:500]


class Courier:
    """Sends the outbox. Several may run at once (one per replica); each message goes out once."""

    def __init__(
        self,
        new_uow: UnitOfWorkFactory,
        mailer: Mailer,
        notices: MailNotices,
        code_keys: Sequence[bytes],
        config: CourierConfig | None = None,
    ) -> None:
        self._uow = new_uow
        self._mailer = mailer
        self._notices = notices
        self._config = config or CourierConfig()
        self._codes = CodeIssuer(code_keys)
        self._next_housekeeping = 0.0
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set; finishes the message in hand, gives back the rest of the batch."""
        log.info("courier.started", **self._mailer.where())
        failures_in_row = 0
        try:
            while not stop.is_set():
                await self._notices.listen(self._wake.set)
                try:
                    await self._housekeep_when_due()
                    handled = await self.run_once(stop)
                    failures_in_row = 0
                except Exception as exc:  # the database went away: keep going, it will come back
                    failures_in_row += 1
                    log.warning("courier.round_failed", error=describe_failure(exc))
                    await self._notices.close()
                    await self._wait(
                        stop, min(30.0, self._config.poll_interval * 2 ** min(failures_in_row, 8))
                    )
                    continue
                if handled < self._config.batch_size:
                    await self._wait(stop, self._config.poll_interval)
        finally:
            await self._notices.close()
            log.info("courier.stopped")

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Claim one batch of due messages and try each; returns how many were claimed."""
        async with self._uow(autocommit=True) as uow:
            batch = await uow.outbox.claim_due(self._config.batch_size, self._config.lease_seconds)
        for index, message in enumerate(batch):
            if stop is not None and stop.is_set():
                async with self._uow(autocommit=True) as uow:
                    await uow.outbox.release([m.id for m in batch[index:]])
                break
            await self._deliver(message)
        return len(batch)

    async def housekeep(self) -> None:
        """One housekeeping round (the loop runs one every ``housekeeping_interval`` seconds)."""
        done = await housekeep(self._uow)
        log.info(
            "courier.housekeeping",
            expired_changes=done.expired_changes,
            purged_rate_events=done.purged_rate_events,
            purged_messages=done.purged_messages,
        )

    async def _housekeep_when_due(self) -> None:
        if time.monotonic() < self._next_housekeeping:
            return
        self._next_housekeeping = time.monotonic() + self._config.housekeeping_interval
        await self.housekeep()

    async def _deliver(self, message: OutboxMessage) -> None:
        try:
            ready = await self._codes.ready(self._uow, message)
        except (ValueError, TypeError) as exc:  # a code mail that cannot carry a code: it never will send
            await self._failed(message, describe_failure(exc), permanent=True)
            return
        if ready is None:
            log.info("email.discarded", outbox_id=message.id, kind=message.kind)
            return
        try:
            await self._mailer.send(ready)
        except SendFailed as failure:  # any failure to hand the message over counts as one try
            await self._failed(message, failure.error, permanent=failure.permanent)
            return
        await self._sent(message)

    async def _sent(self, message: OutboxMessage) -> None:
        # The server has the message: record that before anything else can go wrong. Retried while
        # the lease lasts, since a message left PENDING would be sent again after the lease.
        for attempt in range(3):
            try:
                async with self._uow(autocommit=True) as uow:
                    await uow.outbox.mark_sent(message.id)
                break
            except Exception:  # the database's errors (the service layer does not name asyncpg's)
                if attempt == 2:
                    raise
                await asyncio.sleep(1.0 + attempt)
        EMAILS_SENT.labels(message.kind).inc()
        log.info(
            "email.sent",
            outbox_id=message.id,
            kind=message.kind,
            to=mask_email(message.to_address),
            attempt_number=message.attempts + 1,
        )

    async def _failed(self, message: OutboxMessage, error: str, *, permanent: bool) -> None:
        failures = message.attempts + 1
        abandon = permanent or failures >= self._config.max_attempts
        delay = retry_delay(failures, self._config.backoff_cap)
        next_at = datetime.now(UTC) + timedelta(seconds=delay)
        async with self._uow(autocommit=True) as uow:
            await uow.outbox.mark_failed(message.id, error, next_at, abandon)
        EMAILS_FAILED.labels(message.kind, "true" if abandon else "false").inc()
        log.warning(
            "email.abandoned" if abandon else "email.failed",
            outbox_id=message.id,
            kind=message.kind,
            to=mask_email(message.to_address),
            failures=failures,
            error=error,
            retry_in_seconds=None if abandon else round(delay, 1),
        )

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait for a wake-up, ``stop`` or ``seconds``, whichever comes first."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            self._wake.clear()
