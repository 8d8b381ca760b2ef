#!/usr/bin/env python3
"""Container health check: exit 0 when the local gRPC health service answers SERVING.

Installed in the image as ``rollcall-healthcheck`` and used by ``deploy/compose.yaml``; Kubernetes
uses its native gRPC probes instead. Plaintext only: a server started with ``ROLLCALL_TLS_CERT``
needs a TLS-aware probe.

Usage: ``rollcall-healthcheck PORT [SERVICE]`` (SERVICE defaults to "", the whole server).
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3.0


def check(port: int, service: str) -> int:
    # 127.0.0.1 reaches a server bound to [::] (dual stack) as well as one bound to 0.0.0.0.
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            print(f"unhealthy: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"unhealthy: {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not argv[1].isdigit():
        print("usage: rollcall-healthcheck PORT [SERVICE]", file=sys.stderr)
        return 2
    return check(int(argv[1]), argv[2] if len(argv) == 3 else "")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
