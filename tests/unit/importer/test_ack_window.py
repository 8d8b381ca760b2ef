"""``AckWindow`` against a broker model that, like RabbitMQ, closes the channel on an ack of a tag it
no longer holds: coalesced ``multiple`` acks must never overtake the single acks decided before."""

from __future__ import annotations

import asyncio

from import_service.adapters.amqp.acks import AckWindow


class Broker:
    """The channel's unacknowledged deliveries; an unknown tag is a channel error."""

    def __init__(self) -> None:
        self.unacked: set[int] = set()
        self.closed = False
        self.frames: list[tuple[int, bool]] = []

    def ack(self, tag: int, multiple: bool) -> None:
        self.frames.append((tag, multiple))
        if tag not in self.unacked:
            self.closed = True  # PRECONDITION_FAILED - unknown delivery tag
            raise RuntimeError(f"unknown delivery tag {tag}")
        if multiple:
            self.unacked = {t for t in self.unacked if t > tag}
        else:
            self.unacked.discard(tag)


class Delivery:
    def __init__(self, broker: Broker, tag: int) -> None:
        self.broker = broker
        self.delivery_tag = tag
        broker.unacked.add(tag)

    async def ack(self, multiple: bool = False) -> None:
        await asyncio.sleep(0)  # writing a frame yields to the loop
        self.broker.ack(self.delivery_tag, multiple)
        await asyncio.sleep(0)


async def test_a_multiple_ack_never_overtakes_single_acks_decided_earlier() -> None:
    broker = Broker()
    window = AckWindow()
    deliveries = [Delivery(broker, tag) for tag in range(1, 11)]
    for delivery in deliveries:
        window.delivered(delivery)  # type: ignore[arg-type]
    for delivery in deliveries[1:8]:  # tag 1 is slow: 2..8 go one by one
        window.ack(delivery)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the window's turn: singles decided, sending starts
    window.ack(deliveries[0])  # type: ignore[arg-type]
    window.ack(deliveries[8])  # type: ignore[arg-type]
    window.ack(deliveries[9])  # type: ignore[arg-type]
    await asyncio.sleep(0)
    await window.wait_sent()
    assert not broker.closed, broker.frames
    assert broker.unacked == set()
    singles = [tag for tag, multiple in broker.frames if not multiple]
    assert singles == [2, 3, 4, 5, 6, 7, 8] and broker.frames[-1] == (10, True)


async def test_in_order_deliveries_go_as_one_multiple_ack() -> None:
    broker = Broker()
    window = AckWindow()
    deliveries = [Delivery(broker, tag) for tag in range(1, 501)]
    for delivery in deliveries:
        window.delivered(delivery)  # type: ignore[arg-type]
    for delivery in deliveries:
        window.ack(delivery)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    await window.wait_sent()
    assert broker.frames == [(500, True)] and not broker.unacked
