"""``import-service migrate | serve | relay`` (operations.md): SREs run ``migrate`` as its own step."""

from __future__ import annotations

import asyncio

import typer

from import_service.adapters.postgres.store import migrate as migrate_database
from import_service.bootstrap import build_import, relay_spec
from shared import event_loop
from shared.events.runner import serve_relay
from shared.grpc_kit.metrics import serve_metrics
from shared.grpc_kit.server import install_signal_handlers
from shared.logging import configure_logging, get_logger
from shared.settings import Settings, load_settings

app = typer.Typer(add_completion=False, help="rollcall import service")
log = get_logger("import.main")


@app.command()
def migrate() -> None:
    """Create the import database if missing and apply its migrations (advisory lock 7_002)."""
    settings = load_settings()
    configure_logging(settings.log_level, service="import")
    applied = asyncio.run(migrate_database(settings.import_database_url))
    log.info("migrate.done", applied=applied)


@app.command()
def serve() -> None:
    """Serve ImportService and consume the rows queue until SIGTERM/SIGINT."""
    settings = load_settings()  # fail fast with one line per bad variable
    configure_logging(settings.log_level, service="import")
    event_loop.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    serve_metrics(settings.import_metrics_port)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    import_app = await build_import(settings)
    try:
        running = await import_app.start()
        await import_app.start_consumer()
        log.info("import.serving", port=running.port, queue=import_app.topology.rows_queue)
        await stop.wait()
        log.info("import.stopping", grace_seconds=settings.shutdown_grace_seconds)
    finally:
        await import_app.close()


@app.command()
def relay() -> None:
    """Publish import_job.* events from the outbox to the events exchange until SIGTERM/SIGINT."""
    settings = load_settings()
    configure_logging(settings.log_level, service="import-relay")
    event_loop.run(serve_relay(settings, relay_spec(settings)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
