"""The mail courier: drains the database outbox into SMTP with aiosmtplib (Kratos-style).

Loop: claim due messages (a lease, so couriers on several replicas never hold one message at once),
send each, mark it SENT as soon as the server has accepted it, or count the failure and retry later
with capped exponential backoff and jitter, giving up (ABANDONED) after ``max_attempts``. Between
rounds it waits for a ``NOTIFY outbox`` (sent when a use case commits a mail) or the poll interval.
A code mail gets its code right before the send (``code_mail.CodeIssuer``): codes are never stored.
Now and then it also does the housekeeping (``housekeeping.housekeep``).
Logs carry the outbox id, kind and a masked address, never a body, a code or a full address.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib
import asyncpg
from prometheus_client import Counter

from identity_service.adapters.postgres.outbox import NOTIFY_CHANNEL, OutboxMessage, OutboxRepository
from identity_service.adapters.smtp.code_mail import CodeIssuer
from identity_service.adapters.smtp.housekeeping import housekeep
from identity_service.domain.mail import header_text
from shared.grpc_kit.metrics import serve_metrics
from shared.grpc_kit.server import install_signal_handlers
from shared.logging import get_logger, mask_email
from shared.pg import create_pool
from shared.settings import Settings

log = get_logger("courier")
_LINE_BREAK = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")

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


def describe_error(exc: BaseException) -> str:
    """What is kept of a failure in ``last_error`` and the logs: the error's type and SMTP code, or its
    message with addresses masked — never the message sent (and so never a code)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({str(e.code) for e in exc.recipients})
        return f"SMTPRecipientsRefused: {', '.join(codes)}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.code} {mask_email(exc.message)}"[:500]
    return f"{type(exc).__name__}: {mask_email(str(exc))}"[:500]


def is_permanent(exc: BaseException) -> bool:
    """True when retrying cannot help: the server refused the recipient with a 5xx code."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(500 <= e.code < 600 for e in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return 500 <= exc.code < 600
    return False


def _check_headers(mail: EmailMessage) -> None:
    """ValueError unless every header reads back as one line: nothing in a value was decoded into a
    line break (which the standard library would write out raw, as the start of another header)."""
    for name, value in mail.items():
        if _LINE_BREAK.search(str(value)):
            raise ValueError(f"the {name} header would hold a line break")


class Courier:
    """Sends the outbox. Several may run at once (one per replica); each message goes out once."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        config: CourierConfig | None = None,
        outbox: OutboxRepository | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._config = config or CourierConfig()
        self._outbox = outbox or OutboxRepository()
        self._codes = CodeIssuer(settings.code_keys(), outbox=self._outbox)
        self._next_housekeeping = 0.0
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set; finishes the message in hand, gives back the rest of the batch."""
        log.info("courier.started", smtp_host=self._settings.smtp_host, smtp_port=self._settings.smtp_port)
        failures_in_row = 0
        try:
            while not stop.is_set():
                await self._ensure_listener()
                try:
                    await self._housekeep_when_due()
                    handled = await self.run_once(stop)
                    failures_in_row = 0
                except Exception as exc:  # the database went away: keep going, it will come back
                    failures_in_row += 1
                    log.warning("courier.round_failed", error=describe_error(exc))
                    await self._drop_listener()
                    await self._wait(
                        stop, min(30.0, self._config.poll_interval * 2 ** min(failures_in_row, 8))
                    )
                    continue
                if handled < self._config.batch_size:
                    await self._wait(stop, self._config.poll_interval)
        finally:
            await self._drop_listener()
            log.info("courier.stopped")

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Claim one batch of due messages and try each; returns how many were claimed."""
        batch = await self._outbox.claim_due(self._pool, self._config.batch_size, self._config.lease_seconds)
        for index, message in enumerate(batch):
            if stop is not None and stop.is_set():
                await self._outbox.release(self._pool, [m.id for m in batch[index:]])
                break
            await self._deliver(message)
        return len(batch)

    async def housekeep(self) -> None:
        """One housekeeping round (the loop runs one every ``housekeeping_interval`` seconds)."""
        done = await housekeep(self._pool)
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
            ready = await self._codes.ready(self._pool, message)
            if ready is None:
                log.info("email.discarded", outbox_id=message.id, kind=message.kind)
                return
            mail = self._compose(ready)
        except (ValueError, TypeError) as exc:  # e.g. a line break in a header: it never will send
            await self._failed(message, exc, permanent=True)
            return
        try:
            # Explicit envelope: the recipient is the stored address, never parsed out of header text.
            await aiosmtplib.send(
                mail,
                sender=parseaddr(self._settings.mail_from)[1] or self._settings.mail_from,
                recipients=[message.to_address],
                hostname=self._settings.smtp_host,
                port=self._settings.smtp_port,
                username=self._settings.smtp_username or None,
                password=self._settings.smtp_password or None,
                start_tls=self._settings.smtp_starttls,
                timeout=self._config.send_timeout,
            )
        except Exception as exc:  # any failure to hand the message over counts as one try
            await self._failed(message, exc)
            return
        await self._sent(message)

    async def _sent(self, message: OutboxMessage) -> None:
        # The server has the message: record that before anything else can go wrong. Retried while
        # the lease lasts, since a message left PENDING would be sent again after the lease.
        for attempt in range(3):
            try:
                await self._outbox.mark_sent(self._pool, message.id)
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
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

    async def _failed(self, message: OutboxMessage, exc: BaseException, permanent: bool = False) -> None:
        failures = message.attempts + 1
        abandon = permanent or failures >= self._config.max_attempts or is_permanent(exc)
        error = describe_error(exc)
        delay = retry_delay(failures, self._config.backoff_cap)
        next_at = datetime.now(UTC) + timedelta(seconds=delay)
        await self._outbox.mark_failed(self._pool, message.id, error, next_at, abandon)
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

    def _compose(self, message: OutboxMessage) -> EmailMessage:
        sender = self._settings.mail_from
        domain = sender.rpartition("@")[2] or "localhost"
        mail = EmailMessage()
        mail["From"] = sender
        mail["To"] = Address(addr_spec=message.to_address)  # ValueError unless exactly one address
        mail["Subject"] = header_text(message.subject)
        mail["Date"] = format_datetime(message.created_at)
        # Stable across retries, so a receiving server that saw a message can tell a repeat; except for
        # a code mail, whose retry carries a fresh code and must not be dropped as a repeat.
        retry = f".{message.attempts}" if message.email_change_id else ""
        mail["Message-ID"] = f"<outbox-{message.id}.{int(message.created_at.timestamp())}{retry}@{domain}>"
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(message.body)
        _check_headers(mail)
        return mail

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = None
        try:
            conn = await asyncpg.connect(self._settings.identity_database_url, timeout=5)
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            self._listener = conn
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("courier.listen_failed", error=describe_error(exc))

    async def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait for a NOTIFY, ``stop`` or ``seconds``, whichever comes first."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            self._wake.clear()


async def run_courier(settings: Settings) -> None:
    """The ``identity-service courier`` command: send the outbox until SIGTERM/SIGINT, serving
    /metrics (emails sent/failed) on ``courier_metrics_port``."""
    serve_metrics(settings.courier_metrics_port)
    pool = await create_pool(settings.identity_database_url, min_size=1, max_size=2)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        await Courier(pool, settings).run(stop)
    finally:
        await pool.close()
