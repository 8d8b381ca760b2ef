"""``identity-service migrate | serve | courier | relay`` (operations.md)."""

from __future__ import annotations

import asyncio

import typer

from identity_service.adapters.postgres import MIGRATION_LOCK_KEY, MIGRATIONS
from identity_service.bootstrap import (
    build_courier,
    build_identity,
    build_job_events_consumer,
    build_pending_digest,
    relay_spec,
)
from shared import event_loop, pg
from shared.events.runner import serve_relay
from shared.grpc_kit.metrics import serve_metrics
from shared.grpc_kit.server import install_signal_handlers
from shared.logging import configure_logging, get_logger
from shared.settings import Settings, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The rollcall identity service.")
log = get_logger("identity")


@app.command()
def migrate() -> None:
    """Create the identity database if missing and apply pending migrations (one runner at a time)."""
    settings = load_settings()
    configure_logging(settings.log_level, service="identity")
    asyncio.run(_migrate(settings))


@app.command()
def serve() -> None:
    """Serve gRPC (and /metrics) until SIGTERM or SIGINT, then drain within the grace period."""
    settings = load_settings()
    configure_logging(settings.log_level, service="identity")
    event_loop.run(_serve(settings))


@app.command()
def courier() -> None:
    """Send queued mail through SMTP (and serve /metrics) until SIGTERM or SIGINT."""
    settings = load_settings()
    configure_logging(settings.log_level, service="identity-courier")
    asyncio.run(_courier(settings))


async def _migrate(settings: Settings) -> None:
    url = settings.identity_database_url
    await pg.ensure_database(url)
    applied = await pg.migrate(url, MIGRATIONS, lock_key=MIGRATION_LOCK_KEY)
    log.info("migrate.done", applied=applied)


async def _serve(settings: Settings) -> None:
    serve_metrics(settings.identity_metrics_port)
    identity = await build_identity(settings)
    try:
        running = await identity.start(settings.identity_port, host=settings.identity_host)
        print(f"identity service listening on port {running.port}", flush=True)
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await stop.wait()
        log.info("shutdown.started", grace_seconds=settings.shutdown_grace_seconds)
    finally:
        await identity.close(settings.shutdown_grace_seconds)


async def _courier(settings: Settings) -> None:
    """Send the outbox until SIGTERM/SIGINT, serving /metrics (emails sent/failed, the oldest pending
    request's age) on ``courier_metrics_port``; alongside, the pending digest's timer and the
    consumer of import-job events (notifications)."""
    serve_metrics(settings.courier_metrics_port)
    pool = await pg.create_pool(settings.identity_database_url, min_size=1, max_size=4)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        await asyncio.gather(
            build_courier(pool, settings).run(stop),
            build_pending_digest(pool).run(stop),
            build_job_events_consumer(pool, settings).run(stop),
        )
    finally:
        await pool.close()


@app.command()
def relay() -> None:
    """Publish the event outbox to the events exchange (and serve /metrics and health) until SIGTERM."""
    settings = load_settings()
    configure_logging(settings.log_level, service="identity-relay")
    asyncio.run(serve_relay(settings, relay_spec(settings)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
