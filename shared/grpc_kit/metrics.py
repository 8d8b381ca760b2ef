"""Prometheus metrics common to both services (served on the metrics port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RPCS = Counter("rollcall_rpc_total", "RPCs served, by method and status code", ["method", "code"])
RPC_LATENCY = Histogram(
    "rollcall_rpc_seconds",
    "RPC latency by method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DB_POOL_IN_USE = Gauge("rollcall_db_pool_in_use", "Database connections checked out", ["service"])


def serve_metrics(port: int) -> None:
    """Start the /metrics HTTP endpoint (port 0 disables it)."""
    if port:
        start_http_server(port)
