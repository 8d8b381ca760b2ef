"""Connections the CLI makes: gRPC channels with the bearer token, and the broker.

Each channel opened is remembered (``last_service``) so a call that fails without an ErrorInfo —
a service that is not running — is reported naming that service and its address.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc

from shared import tracing
from shared.devstack import DEV_TOKENS
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as identity_grpc
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as import_grpc

IDENTITY = "identity service"
IMPORT = "import service"
_opened: list[tuple[str, str]] = []


def last_service() -> tuple[str, str] | None:
    """The (name, address) of the service the CLI last opened a channel to, if any."""
    return _opened[-1] if _opened else None


def forget_services() -> None:
    _opened.clear()


@dataclass(frozen=True)
class Target:
    """Where the services and the broker are, and who the CLI is."""

    identity_addr: str = os.environ.get("ROLLCALL_IDENTITY_ADDR", "localhost:50051")
    import_addr: str = os.environ.get("ROLLCALL_IMPORT_ADDR", "localhost:50052")
    amqp_url: str = os.environ.get("ROLLCALL_AMQP_URL", "amqp://guest:guest@localhost:5672/")
    prefix: str = os.environ.get("ROLLCALL_AMQP_PREFIX", "rollcall")
    token: str = os.environ.get("ROLLCALL_CLI_TOKEN", DEV_TOKENS["admin"])
    actor: str = os.environ.get("ROLLCALL_CLI_ACTOR", "")

    def metadata(self, actor: str | None = None) -> tuple[tuple[str, str], ...]:
        pairs = [("authorization", f"Bearer {self.token}")]
        who = actor if actor is not None else self.actor
        if who:
            pairs.append(("x-rollcall-actor", who))
        return tuple(pairs)

    def identity(self) -> tuple[grpc.aio.Channel, identity_grpc.IdentityServiceStub]:
        _opened[:] = [(IDENTITY, self.identity_addr)]
        channel = grpc.aio.insecure_channel(self.identity_addr, interceptors=tracing.client_interceptors())
        return channel, identity_grpc.IdentityServiceStub(channel)

    def importer(self) -> tuple[grpc.aio.Channel, import_grpc.ImportServiceStub]:
        _opened[:] = [(IMPORT, self.import_addr)]
        channel = grpc.aio.insecure_channel(self.import_addr, interceptors=tracing.client_interceptors())
        return channel, import_grpc.ImportServiceStub(channel)
