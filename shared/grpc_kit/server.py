"""Start, watch and stop a grpc.aio server: health, reflection, TLS/mTLS, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from shared import tracing
from shared.grpc_kit.auth import TokenAuthenticator
from shared.grpc_kit.interceptor import AccessRules, RollcallInterceptor
from shared.grpc_kit.reflection import SERVICE_NAME as REFLECTION_SERVICE
from shared.grpc_kit.reflection import enable_server_reflection
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger("server")
Probe = Callable[[], Awaitable[bool]]
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Liveness asks only "is the process working?": it stays SERVING while a dependency is down (readiness
# says NOT_SERVING then), so an orchestrator does not restart pods for a database outage.
LIVENESS_SERVICE = "rollcall.liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class HealthServicer(health_aio.HealthServicer):
    """grpcio-health-checking's asyncio servicer (Check, Watch) and ``List``, which it leaves
    UNIMPLEMENTED although ``grpc.health.v1.Health`` advertises it: every service's status."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in sorted(self._server_status.items())
            }
        )


@dataclass
class RunningServer:
    """A started server, the port it listens on, and its health service."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    service_names: Sequence[str]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def set_serving(self, serving: bool) -> None:
        state = SERVING if serving else NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, state)

    async def start_liveness(self) -> None:
        await self.health.set(LIVENESS_SERVICE, SERVING)

    async def stop(self, grace: float) -> None:
        """Stop taking work, let in-flight RPCs finish within ``grace`` seconds."""
        self.stopping.set()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS when a certificate is configured; with a client CA, client certificates are required."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    pair = (settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())
    ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def client_credentials(settings: Settings, ca: Path | None) -> grpc.ChannelCredentials | None:
    """TLS to a server whose certificate ``ca`` signed (None: plaintext). Presents this service's own
    certificate (ROLLCALL_TLS_CERT/KEY) as its client certificate when it has one, for mTLS."""
    if ca is None:
        return None
    key = settings.tls_key.read_bytes() if settings.tls_key else None
    cert = settings.tls_cert.read_bytes() if settings.tls_cert else None
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(), private_key=key, certificate_chain=cert
    )


async def start_server(
    *,
    settings: Settings,
    port: int,
    add_servicers: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    rules: AccessRules,
    host: str = "[::]",
) -> RunningServer:
    interceptor = RollcallInterceptor(TokenAuthenticator(settings.client_tokens()), rules)
    server = grpc.aio.server(
        interceptors=[*tracing.server_interceptors(), interceptor],  # tracing's span encloses ours
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # clients (the import service) keep idle connections alive with pings every 30 s
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.max_pings_without_data", 0),
        ],
    )
    add_servicers(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    # descriptors with comments and JSON names, from the set generated with the stubs
    enable_server_reflection((*service_names, HEALTH_SERVICE, REFLECTION_SERVICE), server)
    credentials = server_credentials(settings)
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    await server.start()
    running = RunningServer(server, bound, health, service_names)
    await running.set_serving(True)
    await running.start_liveness()
    log.info("server.started", port=bound, services=list(service_names), tls=credentials is not None)
    return running


async def watch_readiness(running: RunningServer, probes: Sequence[Probe], every: float = 2.0) -> None:
    """Keep health NOT_SERVING while a dependency (database, broker) does not answer."""
    serving = True
    while not running.stopping.is_set():
        ok = True
        for probe in probes:
            try:
                with tracing.untraced():
                    ok = ok and await asyncio.wait_for(probe(), timeout=every)
            except Exception:
                ok = False
        if ok != serving and not running.stopping.is_set():
            serving = ok
            await running.set_serving(ok)
            log.warning("health.changed", serving=ok)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running.stopping.wait(), timeout=every)


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
