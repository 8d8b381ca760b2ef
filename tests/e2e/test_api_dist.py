"""rollcall-api, the client distribution for other teams (clients/python, `make dist`): its wheel
holds the generated stubs and .pyi of shared/proto as `rollcall_api` and nothing else, depends on
protobuf and grpcio alone, and works in a fresh virtual environment that has only those: requests
built, a stub called against a server made from the same package, the type stubs seen by mypy."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "shared" / "proto"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

CLIENT = """
import json
from concurrent import futures

import grpc

import rollcall_api
from rollcall_api.rollcall.identity.v1 import identity_service_pb2, identity_service_pb2_grpc, resources_pb2
from rollcall_api.rollcall.importer.v1 import import_service_pb2, import_service_pb2_grpc


class Identity(identity_service_pb2_grpc.IdentityServiceServicer):
    def GetSchool(self, request, context):
        token = dict(context.invocation_metadata()).get("authorization")
        return resources_pb2.School(id=request.id, name=token, email_domains=["uni.edu"])


server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(Identity(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
request = identity_service_pb2.GetSchoolRequest(id="s-1")
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
    school = identity.GetSchool(request, metadata=[("authorization", "Bearer t")], timeout=10)
    imports = import_service_pb2_grpc.ImportServiceStub(channel)
    try:
        imports.GetImportJob(import_service_pb2.GetImportJobRequest(), timeout=10)
        code = "OK"
    except grpc.RpcError as exc:
        code = exc.code().name
server.stop(None)
print(json.dumps({
    "version": rollcall_api.__version__,
    "request": identity_service_pb2.GetSchoolRequest.FromString(request.SerializeToString()).id,
    "school": [school.id, school.name, list(school.email_domains)],
    "import_call": code,
    "service": identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
}))
"""

TYPED = """
from rollcall_api.rollcall.identity.v1 import identity_service_pb2

ok: str = identity_service_pb2.GetSchoolRequest(id="s-1").id
bad = identity_service_pb2.GetSchoolRequest(id=1)
"""


MYPY = [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-error-summary"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, str(ROOT / "scripts/build_api_dist.py"), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert built.returncode == 0, built.stderr
    return Path(built.stdout.strip())


def test_wheel_holds_the_stubs_only_and_depends_on_protobuf_and_grpcio(wheel: Path) -> None:
    version = PYPROJECT["project"]["version"]
    assert wheel.name == f"rollcall_api-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"rollcall_api-{version}.dist-info/"
        modules = {n.removeprefix("rollcall_api/") for n in names if not n.startswith(info)}
        generated = {
            str(p.relative_to(PROTO))
            for p in (PROTO / "rollcall").rglob("*")
            if p.suffix in (".py", ".pyi") and "__pycache__" not in p.parts
        }
        assert modules == generated | {"__init__.py", "py.typed"}
        assert not any(
            "shared.proto" in archive.read(n).decode() for n in names if n.endswith((".py", ".pyi"))
        )
        meta = Parser().parsestr(archive.read(info + "METADATA").decode())
    assert meta["Name"] == "rollcall-api"
    requires = {Requirement(r).name: Requirement(r) for r in meta.get_all("Requires-Dist")}
    assert sorted(requires) == ["grpcio", "protobuf"]
    ours = {Requirement(r).name: Requirement(r) for r in PYPROJECT["project"]["dependencies"]}
    for name, requirement in requires.items():  # the same floors as the services' (what the stubs check)
        assert requirement.specifier == ours[name].specifier, name


def test_a_fresh_venv_with_only_protobuf_and_grpcio_runs_and_type_checks_the_stubs(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"

    def pip(*args: str) -> None:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr

    pip("--no-deps", str(wheel))
    # the locked versions (this environment is the locked one): from pip's cache or index
    pip(*(f"{name}=={metadata.version(name)}" for name in ("grpcio", "protobuf")))
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)} - {"pip", "setuptools"}
    assert installed <= {"rollcall-api", "grpcio", "protobuf", "typing-extensions", "typing_extensions"}

    (tmp_path / "client.py").write_text(CLIENT)
    ran = subprocess.run(
        [str(python), "-I", str(tmp_path / "client.py")], capture_output=True, text=True, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {
        "version": PYPROJECT["project"]["version"],
        "request": "s-1",
        "school": ["s-1", "Bearer t", ["uni.edu"]],
        "import_call": "UNIMPLEMENTED",
        "service": "rollcall.identity.v1.IdentityService",
    }
    alone = subprocess.run([str(python), "-I", "-c", "import shared"], capture_output=True, cwd=tmp_path)
    assert alone.returncode != 0, "the fresh venv must not see this repository"

    (tmp_path / "typed.py").write_text(TYPED)
    checked = subprocess.run(
        [*MYPY, "--python-executable", str(python), "--cache-dir", str(tmp_path / ".mypy_cache"), "typed.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith("typed.py:5:"), checked.stdout + checked.stderr
    assert '"id"' in errors[0] and '"int"' in errors[0], errors[0]
