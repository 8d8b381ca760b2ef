"""``make run``: migrate both databases, then run identity, import, the courier and both events
relays in the foreground.

Each service runs as its own process through the same console scripts an SRE uses
(``identity-service migrate|serve|courier|relay``, ``import-service migrate|serve|relay``), with
development tokens unless ``ROLLCALL_TOKENS`` is set. Ctrl-C (or SIGTERM) stops them all gracefully.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DEV_TOKENS = {
    "admin": "dev-admin-token-0001",
    "platform": "dev-platform-token-01",
    "importer": "dev-importer-token-1",
}
BIN = Path(sys.executable).parent


def dev_environment() -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("ROLLCALL_TOKENS") and not env.get("ROLLCALL_TOKENS_FILE"):
        env["ROLLCALL_TOKENS"] = ",".join(
            f"{'web' if role == 'platform' else role}:{role}:{token}" for role, token in DEV_TOKENS.items()
        )
        env.setdefault("ROLLCALL_IMPORT_TOKEN", DEV_TOKENS["importer"])
    # the dev broker's one user publishes for every school (the CLI sets user_id to it)
    env.setdefault("ROLLCALL_CONNECTORS", "guest:*")
    return env


def _run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([str(BIN / args[0]), *args[1:]], env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {result.returncode})")


def _banner(env: dict[str, str]) -> str:
    admin = DEV_TOKENS["admin"] if "ROLLCALL_TOKENS" not in os.environ else "<from ROLLCALL_TOKENS>"
    identity = env.get("ROLLCALL_IDENTITY_PORT", "50051")
    importer = env.get("ROLLCALL_IMPORT_PORT", "50052")
    identity_metrics = env.get("ROLLCALL_IDENTITY_METRICS_PORT", "9101")
    import_metrics = env.get("ROLLCALL_IMPORT_METRICS_PORT", "9102")
    courier_metrics = env.get("ROLLCALL_COURIER_METRICS_PORT", "9103")
    relay_metrics = env.get("ROLLCALL_RELAY_METRICS_PORT", "9104")
    import_relay_metrics = env.get("ROLLCALL_IMPORT_RELAY_METRICS_PORT", "9105")
    relay_health = env.get("ROLLCALL_RELAY_HEALTH_PORT", "50053")
    import_relay_health = env.get("ROLLCALL_IMPORT_RELAY_HEALTH_PORT", "50054")
    events = f"{env.get('ROLLCALL_AMQP_PREFIX', 'rollcall')}.events"
    smtp = f"{env.get('ROLLCALL_SMTP_HOST', 'localhost')}:{env.get('ROLLCALL_SMTP_PORT', '1025')}"
    return "\n".join(
        [
            "rollcall is running:",
            f"  identity  grpc localhost:{identity}   metrics :{identity_metrics}",
            f"  import    grpc localhost:{importer}   metrics :{import_metrics}",
            f"  courier   sends mail through smtp {smtp}   metrics :{courier_metrics}",
            f"  relays    publish events to exchange {events} (docs/events.md)",
            f"            identity health :{relay_health} metrics :{relay_metrics}"
            f"   import health :{import_relay_health} metrics :{import_relay_metrics}",
            f"  dev admin token:    {admin}",
            f"  dev platform token: {DEV_TOKENS['platform']}",
            f"  try: grpcurl -plaintext -H 'authorization: Bearer {admin}' localhost:{identity} list",
            "  Ctrl-C stops everything.",
        ]
    )


def run() -> None:
    env = dev_environment()
    _run(["identity-service", "migrate"], env)
    _run(["import-service", "migrate"], env)
    commands = [
        ["identity-service", "serve"],
        ["import-service", "serve"],
        ["identity-service", "courier"],
        ["identity-service", "relay"],
        ["import-service", "relay"],
    ]
    children = [subprocess.Popen([str(BIN / c[0]), *c[1:]], env=env) for c in commands]
    print(_banner(env), flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stop and all(child.poll() is None for child in children):
        time.sleep(0.5)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    failed = [c for c, child in zip(commands, children, strict=True) if child.returncode not in (0, -15)]
    if failed and not stop:
        raise SystemExit(f"stopped because {' '.join(failed[0])} exited")


if __name__ == "__main__":
    if sys.argv[1:] != ["run"]:
        raise SystemExit("usage: python -m shared.devstack run")
    run()
