"""Build the rollcall-api wheel: the generated stubs of shared/proto (messages, gRPC stubs and their
.pyi) as the package ``rollcall_api``, for other teams, depending on protobuf and grpcio only.

``clients/python`` holds the distribution's pyproject.toml and README.md. This script stages them
in a temporary folder with shared/proto copied in as ``rollcall_api`` (``shared.proto.rollcall.…``
imports rewritten to ``rollcall_api.rollcall.…``, the way scripts/gen_protos.py rewrites protoc's;
modules keep the proto package path: ``rollcall_api.rollcall.identity.v1``), and an
``__init__.py`` carrying the version of the root pyproject.toml, then builds the wheel with pip.
The descriptor set reflection serves (rollcall.binpb) stays out.

    python scripts/build_api_dist.py [OUT_DIR]     # make dist: OUT_DIR=dist; prints the wheel's path
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "shared" / "proto"
CLIENT = ROOT / "clients" / "python"
PACKAGE = "rollcall_api"
_IMPORT = re.compile(r"^(from|import) shared\.proto\.rollcall(\.| )", re.MULTILINE)
_INIT = '''"""Generated Python stubs of the rollcall gRPC APIs (protos/ of the rollcall repository).

    from rollcall_api.rollcall.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
    from rollcall_api.rollcall.importer.v1 import import_service_pb2, import_service_pb2_grpc
"""

__version__ = "{version}"
'''


def stage(target: Path) -> Path:
    """Lay out the distribution's source tree in ``target`` (which must not exist)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CLIENT / name, target / name)
    package = target / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text(_INIT.format(version=version))
    (package / "py.typed").touch()
    for source in sorted((PROTO / "rollcall").rglob("*")):
        if "__pycache__" in source.parts or not source.is_file() or source.suffix not in (".py", ".pyi"):
            continue
        dest = package / source.relative_to(PROTO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = _IMPORT.sub(lambda m: f"{m.group(1)} {PACKAGE}.rollcall{m.group(2)}", source.read_text())
        if "shared.proto" in text:
            raise SystemExit(f"{source}: a reference to shared.proto that is not an import line")
        dest.write_text(text)
    return target


def build(out: Path) -> Path:
    """Build the wheel into ``out`` with this interpreter's pip and setuptools; return its path."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rollcall-api-") as tmp:
        source = stage(Path(tmp) / "src")
        wheels = Path(tmp) / "wheels"
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        subprocess.run([*pip_wheel, "--wheel-dir", str(wheels), str(source)], check=True)
        (wheel,) = wheels.glob("rollcall_api-*.whl")
        return Path(shutil.copy2(wheel, out / wheel.name))


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"))
