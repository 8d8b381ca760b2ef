"""``AckWindow`` against a broker model that, like RabbitMQ, closes the channel on an ack of a tag it
no longer holds: coalesced ``multiple`` acks must never overtake the single acks decided before."""

from __future__ import annotations

import asyncio

from import_service.adapters.amqp.acks import AckWindow


class Channel:
    """The channel's unacknowledged deliveries; an unknown tag is a channel error."""

    def __init__(self, tags: range) -> None:
        self.unacked: set[int] = set(tags)
        self.closed = False
        self.frames: list[tuple[int, bool]] = []
        self.requeued: list[int] = []

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        await asyncio.sleep(0)  # writing a frame yields to the loop
        self.frames.append((delivery_tag, multiple))
        if delivery_tag not in self.unacked:
            self.closed = True  # PRECONDITION_FAILED - unknown delivery tag
            raise RuntimeError(f"unknown delivery tag {delivery_tag}")
        if multiple:
            self.unacked = {t for t in self.unacked if t > delivery_tag}
        else:
            self.unacked.discard(delivery_tag)
        await asyncio.sleep(0)

    async def basic_nack(
        self, delivery_tag: int, multiple: bool = False, requeue: bool = True, wait: bool = True
    ) -> None:
        assert requeue and not multiple
        self.unacked.discard(delivery_tag)
        self.requeued.append(delivery_tag)


def window_over(channel: Channel, tags: range) -> AckWindow:
    window = AckWindow(channel)
    for tag in tags:
        window.delivered(tag)
    return window


async def test_a_multiple_ack_never_overtakes_single_acks_decided_earlier() -> None:
    channel = Channel(range(1, 11))
    window = window_over(channel, range(1, 11))
    for tag in range(2, 9):  # tag 1 is slow: 2..8 go one by one
        window.ack(tag)
    await asyncio.sleep(0)  # the window's turn: singles decided, sending starts
    for tag in (1, 9, 10):
        window.ack(tag)
    await asyncio.sleep(0)
    await window.wait_sent()
    assert not channel.closed, channel.frames
    assert channel.unacked == set()
    singles = [tag for tag, multiple in channel.frames if not multiple]
    assert singles == [2, 3, 4, 5, 6, 7, 8] and channel.frames[-1] == (10, True)


async def test_in_order_deliveries_go_as_one_multiple_ack() -> None:
    channel = Channel(range(1, 501))
    window = window_over(channel, range(1, 501))
    for tag in range(1, 501):
        window.ack(tag)
    await asyncio.sleep(0)
    await window.wait_sent()
    assert channel.frames == [(500, True)] and not channel.unacked


async def test_a_requeued_delivery_is_never_covered_by_a_later_multiple_ack() -> None:
    channel = Channel(range(1, 6))
    window = window_over(channel, range(1, 6))
    await window.requeue(3)
    for tag in (1, 2, 4, 5):
        window.ack(tag)
    await asyncio.sleep(0)
    await window.wait_sent()
    assert channel.requeued == [3]
    assert not channel.closed and not channel.unacked
    assert channel.frames == [(5, True)]  # 3 left the window when it was requeued


async def test_out_of_order_tags_stop_coalescing() -> None:
    channel = Channel(range(1, 5))
    window = AckWindow(channel)
    for tag in (2, 1, 3, 4):  # never expected of one channel; the window must stay safe
        window.delivered(tag)
    for tag in (1, 2, 3, 4):
        window.ack(tag)
    await asyncio.sleep(0)
    await window.wait_sent()
    assert all(not multiple for _, multiple in channel.frames)
    assert not channel.unacked and not channel.closed
