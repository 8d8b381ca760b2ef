"""Dead-lettering a refused message: copied to the dead-letter queue, recorded, then acknowledged.

The copy goes first (confirmed by the broker, with the reason, the detail and who published it),
then the refusal is recorded in the database (waiting out an outage) under the message's dedupe
key: its message id, else a digest of routing key, content type and body, so a redelivery is
recorded once. It counts on the job it names only if that job is of the routing key's school, and
on no job when the publisher was not a connector allowed for that school. Only then is the message
acknowledged: on its first delivery, never through a loop of broker redeliveries. If the copy or
the record fails, the message is returned to the queue instead (nothing was lost, nothing counted).
"""

from __future__ import annotations

import hashlib

from import_service import metrics
from import_service.domain.messages import DeadReason
from import_service.service.ports import DeadLetter, DeadLetterQueue, Delivery, Store
from import_service.service.retrying import Backoff, until_answered
from import_service.service.settling import Refusal
from shared.logging import get_logger

log = get_logger("import.dead_letters")


class DeadLettering:
    def __init__(
        self,
        store: Store,
        queue: DeadLetterQueue,
        transient_db: tuple[type[BaseException], ...],
        backoff: Backoff,
    ) -> None:
        self._store = store
        self._queue = queue
        self._transient_db = transient_db
        self._backoff = backoff

    async def send(self, delivery: Delivery, refusal: Refusal) -> None:
        """Copies, records and acknowledges ``delivery`` (returns it to the queue if that fails)."""
        letter = dead_letter_of(delivery, refusal)
        try:
            await self._queue.send(delivery, refusal.reason, refusal.detail)
            await until_answered(
                lambda: self._store.dead_letters.add(letter),
                self._transient_db,
                self._backoff,
                "record dead letter",
            )
            metrics.DEAD_LETTERED.labels(letter.reason).inc()
        except Exception:
            log.exception("import.dead_letter_failed", reason=letter.reason)
            await settle_quietly(delivery, requeue=True)
            return
        log.warning("import.dead_lettered", reason=letter.reason, job_id=letter.job_id, detail=letter.detail)
        await settle_quietly(delivery, requeue=False)


def dead_letter_of(delivery: Delivery, refusal: Refusal) -> DeadLetter:
    """The record of a refused message (``school_id``: the school it may be counted for)."""
    counted = refusal.reason != DeadReason.CONNECTOR_NOT_ALLOWED
    return DeadLetter(
        dedupe_key=dedupe_key(delivery),
        job_id=refusal.job_id,
        reason=refusal.reason,
        detail=refusal.detail,
        routing_key=delivery.routing_key,
        content_type=delivery.content_type,
        message_id=delivery.message_id,
        body=delivery.body,
        school_id=delivery.school_id if counted else None,
    )


def dedupe_key(delivery: Delivery) -> str:
    if delivery.message_id:
        return f"id:{delivery.message_id[:200]}"
    digest = hashlib.sha256()
    for part in (delivery.routing_key.encode(), delivery.content_type.encode(), delivery.body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f"sha256:{digest.hexdigest()}"


async def settle_quietly(delivery: Delivery, *, requeue: bool) -> None:
    """Ack or requeue; a closed channel means the broker redelivers anyway."""
    try:
        await (delivery.requeue() if requeue else delivery.ack())
    except Exception as exc:
        log.warning("import.settle_failed", error=type(exc).__name__)
