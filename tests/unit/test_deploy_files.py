"""deploy/ says what operations.md and api.md require: every file parses, and the properties an SRE
relies on hold (topology, probes, hardening, references between files). No Docker or cluster needed;
the YAML checks need PyYAML and are skipped without it."""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import json
import re
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shared.amqp.topology import ROWS_BINDING, Topology
from shared.settings import Role, Settings, parse_tokens

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
OVERLAY = DEPLOY / "k8s" / "overlays" / "example"
EXCHANGE, ROWS, DEAD = "rollcall.import", "rollcall.import.rows", "rollcall.import.dead"
# Queue arguments a quorum queue accepts on RabbitMQ 3.10 as well as 4.x.
PORTABLE_QUORUM_ARGS = {
    "x-queue-type",
    "x-delivery-limit",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-message-ttl",
    "x-expires",
    "x-quorum-initial-group-size",
    "x-single-active-consumer",
}
DEPLOYMENTS = {"identity", "import", "identity-courier", "identity-relay", "import-relay"}
WORKERS = {"identity-courier"}  # Deployments without a gRPC server, hence without gRPC probes
# The events relays: gRPC health on a port of their own, /metrics, a fixed replica count (one leads)
RELAYS = {
    "identity-relay": ("ROLLCALL_RELAY_HEALTH_PORT", "ROLLCALL_RELAY_METRICS_PORT", "rollcall-identity"),
    "import-relay": (
        "ROLLCALL_IMPORT_RELAY_HEALTH_PORT",
        "ROLLCALL_IMPORT_RELAY_METRICS_PORT",
        "rollcall-import",
    ),
}
EVENTS = "rollcall.events"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def yaml_lib() -> ModuleType:
    return pytest.importorskip("yaml", reason="PyYAML is needed to parse the YAML under deploy/")


def _docs(yaml_lib: ModuleType, path: Path) -> list[Obj]:
    return [d for d in yaml_lib.safe_load_all(path.read_text()) if d is not None]


def _base(yaml_lib: ModuleType) -> list[Obj]:
    kustomization = _docs(yaml_lib, BASE / "kustomization.yaml")[0]
    return [d for name in kustomization["resources"] for d in _docs(yaml_lib, BASE / name)]


def _kind(objs: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def _pods(objs: list[Obj]) -> dict[str, Obj]:
    """Pod templates of every Deployment and Job, by workload name."""
    return {o["metadata"]["name"]: o["spec"]["template"] for o in objs if o["kind"] in ("Deployment", "Job")}


def _config() -> dict[str, str]:
    lines = (BASE / "config.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def _definitions() -> Obj:
    return json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())


def test_every_yaml_and_json_file_parses(yaml_lib: ModuleType) -> None:
    yamls = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(yamls) >= 8
    for path in yamls:
        docs = list(yaml_lib.safe_load_all(path.read_text()))
        assert docs or path.name == "secret.example.yaml", f"{path}: empty"
    for path in DEPLOY.rglob("*.json"):
        assert isinstance(json.loads(path.read_text()), dict), path


def test_rows_queue_is_a_bounded_quorum_queue_that_dead_letters() -> None:
    queues = {q["name"]: q for q in _definitions()["queues"]}
    rows = queues[ROWS]
    args = rows["arguments"]
    assert rows["durable"] and not rows["auto_delete"] and rows["vhost"] == "/"
    assert args["x-queue-type"] == "quorum"
    assert isinstance(args["x-delivery-limit"], int) and args["x-delivery-limit"] > 0
    assert args["x-dead-letter-exchange"] == DEAD
    assert isinstance(args["x-max-length"], int) and args["x-max-length"] > 0
    assert args["x-overflow"] == "reject-publish"  # refuse publishers; never drop the oldest rows
    assert set(args) <= PORTABLE_QUORUM_ARGS, "an argument RabbitMQ 3.10 does not know"
    assert queues[DEAD]["durable"] and queues[DEAD]["arguments"]["x-queue-type"] == "quorum"
    assert set(queues[DEAD]["arguments"]) <= PORTABLE_QUORUM_ARGS


def test_definitions_match_what_the_import_service_declares() -> None:
    """RabbitMQ refuses (406 PRECONDITION_FAILED) a redeclaration with different arguments."""
    topology = Topology("rollcall")
    definitions = _definitions()
    queues = {q["name"]: q["arguments"] for q in definitions["queues"]}
    assert (topology.exchange, topology.rows_queue, topology.dead_queue) == (EXCHANGE, ROWS, DEAD)
    assert queues == {
        ROWS: topology.rows_queue_arguments(),
        DEAD: topology.dead_queue_arguments(),
    }
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]}
    assert (topology.exchange, topology.rows_queue, ROWS_BINDING) in bindings
    exchanges = {e["name"]: e for e in definitions["exchanges"]}
    events = exchanges[topology.events_exchange]
    assert (events["type"], events["durable"], events["auto_delete"]) == ("topic", True, False)
    assert not events["arguments"], "the relays declare it without arguments"
    assert all(b["source"] != topology.events_exchange for b in definitions["bindings"]), "consumers bind"


def test_exchanges_and_bindings_route_rows_and_dead_letters() -> None:
    definitions = _definitions()
    exchanges = {e["name"]: e for e in definitions["exchanges"]}
    assert (exchanges[EXCHANGE]["type"], exchanges[EXCHANGE]["durable"]) == ("topic", True)
    assert (exchanges[DEAD]["type"], exchanges[DEAD]["durable"]) == ("fanout", True)
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]}
    assert {(EXCHANGE, ROWS, "rows.*"), (DEAD, DEAD, "")} <= bindings
    everything = definitions["queues"] + definitions["exchanges"] + definitions["bindings"]
    assert {o["vhost"] for o in everything} == {"/"}
    assert "users" not in definitions and "permissions" not in definitions, "no credentials here"


def test_dockerfile_has_a_non_root_target_per_service() -> None:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    for line in (ln.strip() for ln in text.splitlines()):
        if match := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = stages[match[2]] = {"parent": match[1], "lines": []}
        elif line and not line.startswith("#"):
            current.setdefault("lines", []).append(line)

    def chain(name: str) -> list[str]:
        stage = stages.get(name)
        return chain(stage["parent"]) + stage["lines"] if stage else []

    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    assert any("pip wheel" in line for line in stages["builder"]["lines"])
    for target, command in (("identity", "identity-service"), ("import", "import-service")):
        lines = chain(target)
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users and users[-1].split(":")[0] not in ("0", "root"), target
        assert f'ENTRYPOINT ["{command}"]' in stages[target]["lines"]
        assert 'CMD ["serve"]' in stages[target]["lines"]


def _dockerignored(rel: str, patterns: list[str]) -> bool:
    """Last matching pattern wins; a pattern matching a folder covers what is inside it."""
    excluded = False
    for raw in patterns:
        pattern = raw.lstrip("!").strip("/")
        prefixes = ["/".join(rel.split("/")[: i + 1]) for i in range(rel.count("/") + 1)]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            excluded = not raw.startswith("!")
    return excluded


def test_dockerfile_copies_exist_and_pass_dockerignore() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    copies = re.findall(r"^COPY\s+(?!--from)(.+)$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    sources = [s for line in copies for s in line.split()[:-1] if not s.startswith("--")]
    assert "pyproject.toml" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not _dockerignored(source.rstrip("/"), patterns), f"COPY {source}: excluded by .dockerignore"
    for private in (".git", ".venv", ".env", "tests/conftest.py", "deploy/k8s/base/config.env"):
        assert _dockerignored(private, patterns), f"{private} would be sent to the Docker daemon"


def test_kustomizations_list_files_that_exist(yaml_lib: ModuleType) -> None:
    for folder in (BASE, OVERLAY):
        k = _docs(yaml_lib, folder / "kustomization.yaml")[0]
        generators = k.get("configMapGenerator", [])
        listed = k.get("resources", []) + [p["path"] for p in k.get("patches", []) if "path" in p]
        listed += [f for g in generators for f in g.get("envs", []) + g.get("files", [])]
        assert listed, folder
        for name in listed:
            path = folder / name
            assert path.is_file() or (path / "kustomization.yaml").is_file(), f"{folder}: {name} missing"
    assert "namespace" not in _docs(yaml_lib, BASE / "kustomization.yaml")[0]
    assert all("namespace" not in o["metadata"] for o in _base(yaml_lib)), "the base is namespace-agnostic"
    assert not _kind(_base(yaml_lib), "Secret"), "the Secret is referenced, never shipped"


def test_servers_have_grpc_probes_on_their_grpc_port(yaml_lib: ModuleType) -> None:
    deployments = _kind(_base(yaml_lib), "Deployment")
    assert set(deployments) == DEPLOYMENTS
    config = _config()
    expected = {"identity": config["ROLLCALL_IDENTITY_PORT"], "import": config["ROLLCALL_IMPORT_PORT"]}
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if name in WORKERS:
            assert "grpc" not in ports
            continue
        if name in RELAYS:
            continue  # test_relays_are_deployed_on_their_own
        assert str(ports["grpc"]) == expected[name]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == ports["grpc"], f"{name} {probe}"
        assert "replicas" not in deployment["spec"], f"{name}: its autoscaler owns the replica count"


def test_relays_are_deployed_on_their_own(yaml_lib: ModuleType) -> None:
    """Each relay: its service's image and settings, args ``relay``, gRPC probes on its health port,
    Prometheus annotations on its metrics port, two replicas (one leads) and a disruption budget."""
    objs = _base(yaml_lib)
    deployments, budgets = _kind(objs, "Deployment"), _kind(objs, "PodDisruptionBudget")
    config = _config()
    for name, (health_key, metrics_key, image) in RELAYS.items():
        deployment = deployments[name]
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["image"] == image and container["args"] == ["relay"], name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert set(ports) == {"health", "metrics"}, name
        assert str(ports["health"]) == config[health_key] and str(ports["metrics"]) == config[metrics_key]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == ports["health"], f"{name} {probe}"
        assert container["livenessProbe"]["grpc"]["service"] == "rollcall.liveness", name
        assert "service" not in container["readinessProbe"]["grpc"], (
            f"{name}: readiness follows the dependencies"
        )
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(ports["metrics"]), name
        assert deployment["spec"]["replicas"] >= 2, f"{name}: a stand-by takes over when the leader goes"
        (budget,) = [
            b
            for b in budgets.values()
            if b["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        ]
        assert budget["spec"]["minAvailable"] == 1, name
    overlay = _docs(yaml_lib, OVERLAY / "kustomization.yaml")[0]
    counts = {r["name"]: r["count"] for r in overlay.get("replicas", [])}
    assert all(counts.get(name, 2) >= 2 for name in RELAYS)
    Settings(  # the services' own validation of the events settings in config.env
        events_content_type=config["ROLLCALL_EVENTS_CONTENT_TYPE"],
        events_retention_hours=float(config["ROLLCALL_EVENTS_RETENTION_HOURS"]),
    )


def test_every_pod_is_non_root_read_only_and_bounded(yaml_lib: ModuleType) -> None:
    pods = _pods(_base(yaml_lib))
    assert len(pods) == len(DEPLOYMENTS) + 2  # plus the two migration Jobs
    for name, pod in pods.items():
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert "ALL" in security["capabilities"]["drop"], name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
            refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
            assert refs == {("configMapRef", "rollcall-config"), ("secretRef", "rollcall-secrets")}, name


def test_shutdown_drain_fits_the_grace_period(yaml_lib: ModuleType) -> None:
    drain = float(_config()["ROLLCALL_SHUTDOWN_GRACE_SECONDS"])
    for name, deployment in _kind(_base(yaml_lib), "Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        pre_stop = spec["containers"][0].get("lifecycle", {}).get("preStop", {}).get("exec", {})
        pause = float(pre_stop.get("command", ["sleep", "0"])[-1])
        assert spec["terminationGracePeriodSeconds"] >= 45, name
        assert pause + drain < spec["terminationGracePeriodSeconds"], name


def test_services_and_budgets_select_existing_pods(yaml_lib: ModuleType) -> None:
    objs = _base(yaml_lib)
    templates = [d["spec"]["template"] for d in _kind(objs, "Deployment").values()]

    def pods_of(selector: dict[str, str]) -> list[Obj]:
        return [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]

    for name, service in _kind(objs, "Service").items():
        (pod,) = pods_of(service["spec"]["selector"])
        names = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names, name
    for name, budget in _kind(objs, "PodDisruptionBudget").items():
        assert len(pods_of(budget["spec"]["selector"]["matchLabels"])) == 1, name


def test_identity_scales_on_cpu_and_import_on_rows_queue_depth(yaml_lib: ModuleType) -> None:
    objs = _base(yaml_lib)
    (hpa,) = _kind(objs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "identity" and hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    scaled = _kind(objs, "ScaledObject")["import"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "import" and scaled["minReplicaCount"] >= 1
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == ROWS
    assert trigger["metadata"]["mode"] == "QueueLength" and trigger["metadata"]["value"].isdigit()
    auth = _kind(objs, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    assert {(r["parameter"], r["name"]) for r in auth["spec"]["secretTargetRef"]} == {
        ("host", "rollcall-secrets")
    }


def test_one_migration_job_per_service(yaml_lib: ModuleType) -> None:
    jobs = _kind(_base(yaml_lib), "Job")
    images = {}
    for name, job in jobs.items():
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["migrate"], name
        assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure"), name
        images[container["image"]] = name
    assert set(images) == {"rollcall-identity", "rollcall-import"}


def test_overlay_sets_namespace_and_pins_both_images(yaml_lib: ModuleType) -> None:
    overlay = _docs(yaml_lib, OVERLAY / "kustomization.yaml")[0]
    assert overlay["namespace"]
    tags = {i["name"]: str(i["newTag"]) for i in overlay["images"]}
    assert set(tags) == {"rollcall-identity", "rollcall-import"}
    assert all(tag and tag != "latest" for tag in tags.values())


def test_compose_runs_every_part_in_order(yaml_lib: ModuleType) -> None:
    compose = _docs(yaml_lib, DEPLOY / "compose.yaml")[0]
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert services["courier"]["command"] == ["courier"]
    for relay, service in (("identity-relay", "identity"), ("import-relay", "import")):
        assert services[relay]["command"] == ["relay"]
        assert services[relay]["image"] == services[service]["image"]
        assert services[relay]["build"] == services[service]["build"]
        assert services[relay]["environment"] == services[service]["environment"]
        assert (
            "rabbitmq" in services[relay]["depends_on"]
            and f"{service}-migrate" in services[relay]["depends_on"]
        )
    env = services["identity"]["environment"]
    for relay, key in (
        ("identity-relay", "ROLLCALL_RELAY_HEALTH_PORT"),
        ("import-relay", "ROLLCALL_IMPORT_RELAY_HEALTH_PORT"),
    ):
        assert services[relay]["healthcheck"]["test"] == ["CMD", "rollcall-healthcheck", env[key]]
    for name in ("identity-migrate", "import-migrate"):
        assert services[name]["command"] == ["migrate"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, name
            if dependency.endswith("-migrate"):
                assert rule["condition"] == "service_completed_successfully", f"{name} -> {dependency}"
            else:
                assert rule["condition"] == "service_healthy", f"{name} -> {dependency}"
                assert "healthcheck" in services[dependency], dependency
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for service in services.values():
        if "build" in service:
            assert re.search(rf"^FROM \S+ AS {service['build']['target']}$", dockerfile, re.MULTILINE)
        for volume in service.get("volumes", []):
            if volume.startswith("./"):
                assert (DEPLOY / volume.split(":")[0]).exists(), volume


def test_compose_dev_settings_are_valid(yaml_lib: ModuleType) -> None:
    services = _docs(yaml_lib, DEPLOY / "compose.yaml")[0]["services"]
    env = services["identity"]["environment"]
    tokens = parse_tokens(env["ROLLCALL_TOKENS"])  # the services' own parser: 16+ characters etc.
    assert {t.role for t in tokens} == set(Role)
    import_token = hashlib.sha256(env["ROLLCALL_IMPORT_TOKEN"].encode()).digest()
    assert import_token in {t.token_sha256 for t in tokens if t.role is Role.IMPORTER}
    init_sql = (DEPLOY / "postgres-init" / "01-create-databases.sql").read_text()
    created = set(re.findall(r"^CREATE DATABASE (\w+);", init_sql, re.MULTILINE))
    assert created == {"rollcall_identity", "rollcall_import"}
    assert env["ROLLCALL_IDENTITY_DATABASE_URL"].endswith("/rollcall_identity")
    assert env["ROLLCALL_IMPORT_DATABASE_URL"].endswith("/rollcall_import")
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
    (folder,) = re.findall(r"^load_definitions\s*=\s*(\S+)", conf, re.MULTILINE)
    mounts = [volume.split(":")[:2] for volume in services["rabbitmq"]["volumes"]]
    loaded = {source for source, target in mounts if target.startswith(folder.rstrip("/") + "/")}
    assert loaded == {"./rabbitmq/definitions.json", "./rabbitmq/dev-users.json"}


def _healthcheck_module() -> ModuleType:
    path = DEPLOY / "docker" / "healthcheck.py"
    spec = importlib.util.spec_from_file_location("rollcall_healthcheck", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_container_healthcheck_follows_the_health_service() -> None:
    check = _healthcheck_module()
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert check.main(["rollcall-healthcheck", str(port)]) == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert check.main(["rollcall-healthcheck", str(port)]) == 1
        assert check.main(["rollcall-healthcheck", str(port), "no.such.Service"]) == 1
        assert check.main(["rollcall-healthcheck", "not-a-port"]) == 2
    finally:
        server.stop(None)


def test_connector_example_lets_each_connector_write_only_its_schools_rows() -> None:
    """deploy/rabbitmq/connectors.example.json: per-connector users write only to the import exchange,
    and only with routing keys rows.<school_id> of their own schools (topic permissions)."""
    example = json.loads((DEPLOY / "rabbitmq" / "connectors.example.json").read_text())
    assert all(user["password_hash"] == "" for user in example["users"]), "an example, no credentials"
    assert all(not user["tags"] for user in example["users"]), "no tags (impersonator would defeat user_id)"
    permissions = {p["user"]: p for p in example["permissions"]}
    topics = {t["user"]: t for t in example["topic_permissions"]}
    connectors = [u["name"] for u in example["users"] if u["name"] != "rollcall-import"]
    assert connectors and set(connectors) <= set(permissions) and set(connectors) <= set(topics)
    other = "rows.00000000-0000-4000-8000-000000000000"
    for name in connectors:
        allowed = permissions[name]
        assert (allowed["configure"], allowed["read"]) == ("^$", "^$")
        assert re.fullmatch(allowed["write"], EXCHANGE) and not re.search(allowed["write"], ROWS)
        topic = topics[name]
        assert topic["exchange"] == EXCHANGE
        schools = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", topic["write"])
        assert schools, f"{name} names its schools"
        for school in schools:
            assert re.search(topic["write"], f"rows.{school}")
            assert not re.search(topic["write"], f"rows.{school.upper()}")
        for wrong in (other, "rows.*", "rows.#", f"rows.{schools[0]}.x", f"x.rows.{schools[0]}"):
            assert not re.search(topic["write"], wrong), (name, wrong)
    own = permissions["rollcall-import"]
    for name in (EXCHANGE, ROWS, DEAD, EVENTS):  # EVENTS: the import relay declares and publishes
        assert re.search(own["configure"], name) and re.search(own["write"], name)
    assert not re.search(own["read"], EVENTS) and not re.search(own["write"], EVENTS + ".x")
