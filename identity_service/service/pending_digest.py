"""The pending digest: the courier process tells each school's ``notify_emails`` about new pending
requests, at most once per ``interval`` (an hour) per school, on a timer.

Each round (every ``check_every`` seconds) finds the schools with new requests (``pending_digest_items``,
one row per sign-up) whose last digest is at least ``interval`` old, and for each, in one
transaction: takes the school's digest claim (locked, SKIP LOCKED: a second courier skips the school),
takes its new requests, and — when some are still PENDING, the school has addresses and did not mute
PENDING_DIGEST — queues one mail per address with the count, how many wait in all and the oldest
request's age, and moves the claim to now. Nothing new, nothing sent. The clock is injectable, so
tests drive hours without waiting.

The round also sets ``rollcall_pending_oldest_seconds``: the age of the oldest PENDING request of any
school (0 when none) — one series, not one per school — and forgets handled events after 30 days.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Gauge

from identity_service.domain.mail import MailKind, OutgoingMail
from identity_service.domain.notifications import NotificationKind, is_muted, pending_digest_message
from identity_service.service.ports import UnitOfWorkFactory
from shared.logging import get_logger

log = get_logger("notifications")

PENDING_OLDEST = Gauge(
    "rollcall_pending_oldest_seconds",
    "Age in seconds of the oldest pending student request of any school (0 when none is pending)",
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DigestConfig:
    interval: timedelta = timedelta(hours=1)
    check_every: float = 60.0
    event_retention: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class DigestRound:
    digests: int  # schools whose digest was queued
    mails: int
    oldest_pending_seconds: float


class PendingDigest:
    """Runs in every courier process; the claims keep two of them from sending one digest twice."""

    def __init__(
        self,
        new_uow: UnitOfWorkFactory,
        config: DigestConfig | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._uow = new_uow
        self._config = config or DigestConfig()
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """A round every ``check_every`` seconds until ``stop``; a failed round is logged and retried."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:  # the database went away: the next round tries again
                log.warning("digest.round_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._config.check_every)

    async def run_once(self) -> DigestRound:
        now = self._clock()
        not_since = now - self._config.interval
        async with self._uow(read_only=True) as uow:
            oldest = await uow.notifications.oldest_pending()
            due = await uow.notifications.digest_schools(not_since)
        age = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
        PENDING_OLDEST.set(age)
        digests = mails = 0
        for school_id in due:
            sent = await self._digest(school_id, now, not_since)
            digests += 1 if sent else 0
            mails += sent
        async with self._uow(autocommit=True) as uow:
            await uow.notifications.purge_events(self._config.event_retention, limit=1000)
        return DigestRound(digests, mails, age)

    async def _digest(self, school_id: str, now: datetime, not_since: datetime) -> int:
        """Queue the school's digest if it is due and has new requests; how many mails."""
        async with self._uow() as uow:
            if not await uow.notifications.claim_digest(school_id, not_since):
                return 0  # another courier has it, or sent it meanwhile
            new_requests = await uow.notifications.take_new_pending(school_id)
            school = await uow.schools.get(school_id)
            if school is None or new_requests == 0:
                return 0
            if (
                is_muted(school.muted_notifications, NotificationKind.PENDING_DIGEST)
                or not school.notify_emails
            ):
                return 0
            waiting, oldest = await uow.notifications.pending_summary(school_id)
            age = now - oldest if oldest else timedelta(0)
            subject, body = pending_digest_message(
                school.name, school.id, new_requests, max(waiting, new_requests), age
            )
            await uow.outbox.enqueue_many(
                [
                    OutgoingMail(to, subject, body, MailKind.PENDING_DIGEST, school.id)
                    for to in school.notify_emails
                ]
            )
            await uow.notifications.mark_digest(school_id, now, new_requests)
        log.info(
            "digest.queued", school_id=school_id, new_requests=new_requests, mails=len(school.notify_emails)
        )
        return len(school.notify_emails)
