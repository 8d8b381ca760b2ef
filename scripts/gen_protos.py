"""Generate the Python stubs (+ mypy-protobuf .pyi) for protos/ into shared/proto, and the
descriptor set the servers' reflection serves (shared/proto/rollcall.binpb).

protoc writes imports by proto path (``from rollcall.identity.v1 import ...``); we rewrite them to
``from shared.proto.rollcall...`` so the stubs live inside the ``shared`` package.

The _pb2 modules' descriptors carry neither comments nor JSON names, so reflection built from them
shows grpcurl snake_case fields and no documentation. ``rollcall.binpb`` is a FileDescriptorSet of
every proto file and its imports with source info (the comments) and the ``json_name`` protoc
fills in; ``shared/grpc_kit/reflection.py`` serves it as it is.

Run with ``make proto``; ``tests/unit/test_generated_stubs.py`` regenerates into a temporary folder
and fails on any difference with what is committed.
"""

from __future__ import annotations

import re
import shutil
import sys
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE = "shared.proto"
BIN = Path(sys.executable).parent
DESCRIPTOR_SET = "rollcall.binpb"
_IMPORT = re.compile(r"^(from|import) rollcall(\.| )", re.MULTILINE)


def generate(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = str(files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        f"--descriptor_set_out={out / DESCRIPTOR_SET}",
        "--include_imports",
        "--include_source_info",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in out.rglob("*.py*"):
        text = _IMPORT.sub(lambda m: f"{m.group(1)} {PACKAGE}.rollcall{m.group(2)}", path.read_text())
        path.write_text(text)
    for folder in [out, *[d for d in out.rglob("*") if d.is_dir()]]:
        (folder / "__init__.py").touch()
    (out / "py.typed").touch()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "shared" / "proto"
    generate(target)
