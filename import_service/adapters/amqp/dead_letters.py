"""``ports.DeadLetterQueue`` on RabbitMQ: a refused message's copy to ``P.import.dead``.

The copy keeps the body, content type, routing key and message id, and carries the reason headers
(``x-rollcall-dead-reason``, ``x-rollcall-dead-detail``, the original routing key and content type,
and ``x-rollcall-user-id``: who published it). It has no ``user_id`` property of its own, so
replaying one never passes it off as the service's own. Published with confirms.
"""

from __future__ import annotations

from import_service.service.ports import Delivery
from shared.amqp.publisher import AmqpPublisher

DEAD_REASON_HEADER = "x-rollcall-dead-reason"
DEAD_DETAIL_HEADER = "x-rollcall-dead-detail"
ROUTING_KEY_HEADER = "x-rollcall-routing-key"
CONTENT_TYPE_HEADER = "x-rollcall-content-type"
USER_ID_HEADER = "x-rollcall-user-id"


class AmqpDeadLetters:
    def __init__(self, publisher: AmqpPublisher) -> None:
        self._publisher = publisher

    async def send(self, delivery: Delivery, reason: str, detail: str) -> None:
        headers = {
            DEAD_REASON_HEADER: reason,
            DEAD_DETAIL_HEADER: detail[:500],
            ROUTING_KEY_HEADER: delivery.routing_key[:255],
            CONTENT_TYPE_HEADER: delivery.content_type[:255],
        }
        if delivery.user_id:
            headers[USER_ID_HEADER] = delivery.user_id[:255]
        await self._publisher.publish_dead(
            delivery.body, delivery.content_type, delivery.routing_key, delivery.message_id, headers
        )
