"""Several broker URLs (ROLLCALL_AMQP_URL comma-separated, the nodes of a cluster): settings accept
and check them, the AMQP user and the masked URL work with a list, and ``connect_robust_any``
connects to the first that answers and reconnects to the next ones in turn."""

from __future__ import annotations

import socket

import pytest
from yarl import URL

from shared.amqp.connect import MultiUrlRobustConnection, connect_robust_any, split_urls
from shared.amqp.publisher import amqp_user
from shared.cli.failures import mask_url, without_secret
from shared.settings import Settings

A = "amqp://conn:s3cret@rabbit-a:5672/"
B = "amqp://conn:s3cret@rabbit-b:5672/"
C = "amqp://conn:s3cret@rabbit-c:5673/"


def test_settings_take_one_url_or_several() -> None:
    assert Settings(amqp_url=A).amqp_urls == [A]
    several = Settings(amqp_url=f" {A}, {B} ,{C},")
    assert several.amqp_urls == [A, B, C]
    assert several.amqp_url == f"{A},{B},{C}"


@pytest.mark.parametrize(
    "value",
    ["", " , ", "http://rabbit/", f"{A},amqp://other:pw@rabbit-b/", "amqp://rabbit:notaport/"],
)
def test_settings_refuse_bad_broker_urls(value: str) -> None:
    with pytest.raises(ValueError, match="amqp_url"):
        Settings(amqp_url=value)


def test_amqp_user_and_masking_work_with_a_list() -> None:
    assert amqp_user(f"{A},{B}") == "conn"
    assert amqp_user("amqp://rabbit-a/,amqp://rabbit-b/") == "guest"
    assert mask_url(f"{A},{B}") == "amqp://conn:***@rabbit-a:5672/,amqp://conn:***@rabbit-b:5672/"
    assert "s3cret" not in without_secret(f"could not reach {A} nor {B}", f"{A},{B}")
    assert split_urls(f"{A}, ,{B}") == [A, B]


async def test_every_reconnect_attempt_moves_to_the_next_url() -> None:
    connection = MultiUrlRobustConnection(URL(A), urls=[A, B, C])
    assert connection.url == URL(A)
    connection.transport = None  # the first attempt: the first URL
    assert connection.url == URL(A)
    connection.transport = None  # connection lost, reconnecting
    assert connection.url == URL(B)
    connection.transport = None  # that attempt failed: the next
    assert connection.url == URL(C)
    connection.transport = None  # and round again
    assert connection.url == URL(A)
    await connection.close()
    connection.transport = None  # closing never moves on
    assert connection.url == URL(A)


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}/"  # nothing listens there once closed


async def test_connects_to_the_first_url_that_answers(amqp_url: str) -> None:
    dead = _refused_url()
    connection = await connect_robust_any(f"{dead},{amqp_url}", timeout=5)
    try:
        assert str(connection.url) == str(URL(amqp_url))
        channel = await connection.channel()
        await channel.close()
    finally:
        await connection.close()


async def test_none_answering_raises_the_refusal() -> None:
    with pytest.raises(ConnectionError):
        await connect_robust_any([_refused_url(), _refused_url()], timeout=2)
