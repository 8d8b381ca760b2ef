"""scripts/image_smoke.py (``make image-smoke``, operations.md F10) and its wiring, without a container
engine: the run settings the services accept, the hardening deploy/k8s asks for, the Dockerfile
building without a registry, how a Docker client is chosen, and the Makefile / CI entries."""

from __future__ import annotations

import importlib.util
import re
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def smoke() -> ModuleType:
    path = ROOT / "scripts" / "image_smoke.py"
    spec = importlib.util.spec_from_file_location("image_smoke", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["image_smoke"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def yaml_lib() -> ModuleType:
    return pytest.importorskip("yaml")


def test_dockerfile_needs_no_registry_for_its_frontend() -> None:
    """A ``# syntax=`` directive makes every build pull the frontend image from a registry."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)


def test_the_smoke_runs_the_uid_of_the_image_and_of_the_manifests(
    smoke: ModuleType, yaml_lib: ModuleType
) -> None:
    users = re.findall(r"^USER (\S+)$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert users[-1] == f"{smoke.IMAGE_UID}:{smoke.IMAGE_UID}"
    identity = next(yaml_lib.safe_load_all((DEPLOY / "k8s/base/identity.yaml").read_text()))
    assert identity["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == smoke.IMAGE_UID


def test_containers_run_as_the_manifests_ask(smoke: ModuleType) -> None:
    """readOnlyRootFilesystem, an emptyDir on /tmp, capabilities dropped, no privilege escalation, and
    the host's network (the machine's PostgreSQL and RabbitMQ, no bridge or NAT)."""
    hardening = " ".join(smoke.HARDENING)
    for flag in ("--network host", "--read-only", "--tmpfs /tmp:", "--cap-drop ALL", "no-new-privileges"):
        assert flag in hardening
    run = smoke.Smoke(engine=smoke.Engine("/usr/bin/docker", Path("/nonexistent")), pg_url="", amqp_url="")
    run.env = {"ROLLCALL_ENV": "dev"}
    detached = run.docker_run("c", "rollcall-identity:smoke", "serve", detach=True)
    assert detached[:3] == ["/usr/bin/docker", "run", "-d"] and detached[-2:] == [
        "rollcall-identity:smoke",
        "serve",
    ]
    assert f"{smoke.SMOKE_LABEL}={run.tag}" in detached and "ROLLCALL_ENV=dev" in detached
    assert run.docker_run("m", "rollcall-import:smoke", "migrate", detach=False)[2] == "--rm"


def test_run_settings_are_private_and_valid(smoke: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    run = smoke.Smoke(
        engine=smoke.Engine("/usr/bin/docker", Path("/nonexistent")),
        pg_url="postgresql://127.0.0.1:5432/postgres",
        amqp_url="amqp://guest:guest@127.0.0.1:5672/",
    )
    run.settings(smtp_port=2525)
    env = run.env
    assert run.tag.startswith("rcsmoke_") and env["ROLLCALL_AMQP_PREFIX"] == run.tag
    identity_db, import_db = run.databases
    assert env["ROLLCALL_IDENTITY_DATABASE_URL"].endswith(f"/{identity_db}")
    assert env["ROLLCALL_IMPORT_DATABASE_URL"].endswith(f"/{import_db}")
    assert "@127.0.0.1" in env["ROLLCALL_IDENTITY_DATABASE_URL"], (
        "a user named: uid 10001 has no passwd entry"
    )
    ports = [value for key, value in env.items() if key.endswith("_PORT") and key != "ROLLCALL_SMTP_PORT"]
    assert len(ports) == 9 and len(set(ports)) == 9, "every listener on a port of its own"
    fields = {f"ROLLCALL_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, "a variable the services do not read"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.import_token and settings.amqp_prefix == run.tag
    assert set(run.services) == {"identity", "courier", "identity-relay", "import", "import-relay"}
    assert {s.image for s in run.services.values()} == {"rollcall-identity:smoke", "rollcall-import:smoke"}
    assert run.services["courier"].grpc_port is None
    assert all(s.metrics_port for s in run.services.values())


def test_container_url_names_a_user(smoke: ModuleType) -> None:
    assert smoke.container_url("postgresql://127.0.0.1:5432/postgres", "root") == (
        "postgresql://root@127.0.0.1:5432/postgres"
    )
    kept = "postgresql://app:secret@db:5432/postgres?sslmode=require"
    assert smoke.container_url(kept, "root") == kept
    assert (
        smoke.with_database(kept, "x_identity")
        == "postgresql://app:secret@db:5432/x_identity?sslmode=require"
    )


def test_root_read_only_is_read_from_mountinfo(smoke: ModuleType) -> None:
    ro = "1234 1200 0:99 / / ro,relatime master:1 - overlay overlay rw,lowerdir=/a\n"
    tmp = "1240 1234 0:100 / /tmp rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=65536k\n"
    assert smoke.root_is_read_only(ro + tmp)
    assert not smoke.root_is_read_only(ro.replace(" ro,", " rw,") + tmp)
    assert not smoke.root_is_read_only(tmp)


def test_stand_in_has_the_official_layout_and_says_what_it_is(smoke: ModuleType) -> None:
    changes = smoke.stand_in_changes("3.11.2")
    assert "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" in changes
    assert any(c.startswith(f"LABEL {smoke.STAND_IN_LABEL}=") and "3.11.2" in c for c in changes)
    assert smoke.DEBIAN_SUITE == "bookworm", "Debian 12 is the release with Python 3.11"
    assert {"python3", "python3-venv", "ca-certificates"} <= set(smoke.STAND_IN_PACKAGES)


def _fake_client(folder: Path, version: str, buildx: bool) -> str:
    path = folder / f"docker-{version}-{buildx}"
    path.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = buildx ]; then exit {0 if buildx else 1}; fi\n'
        f'if [ "$1" = version ]; then echo {version}; exit 0; fi\n'
        "exit 2\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_client_is_taken_only_if_it_builds_with_buildkit(smoke: ModuleType, tmp_path: Path) -> None:
    assert smoke.builds_with_buildkit(_fake_client(tmp_path, "20.10.24+dfsg1", buildx=False))  # Debian 12
    assert smoke.builds_with_buildkit(_fake_client(tmp_path, "28.2.2", buildx=True))
    assert not smoke.builds_with_buildkit(_fake_client(tmp_path, "28.2.2", buildx=False))
    assert not smoke.builds_with_buildkit(str(tmp_path / "missing"))


def test_make_and_ci_run_the_smoke_and_the_deploy_linters() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (lint,) = re.findall(r"^lint:([^#\n]*)", makefile, re.MULTILINE)
    assert "deploy-lint" in lint.split()
    (recipe,) = re.findall(r"^deploy-lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert "hadolint deploy/Dockerfile" in recipe
    assert "docker-compose -f deploy/compose.yaml config" in recipe
    assert "K8S_VALIDATE" in recipe
    assert re.search(r"^image-smoke:.*\n\t\$\(BIN\)/python scripts/image_smoke\.py$", makefile, re.MULTILINE)
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert steps.index("make test") < steps.index("make image-smoke") < steps.index("make test-faults"), (
        "after the tests, before the fault suite restarts PostgreSQL and RabbitMQ"
    )


def test_the_started_daemon_leaves_the_network_alone(smoke: ModuleType) -> None:
    flags = set(smoke.DOCKERD_FLAGS)
    assert {"--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none"} <= flags
