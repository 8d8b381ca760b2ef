"""The committed stubs in shared/proto are exactly what protos/ generates (no hand edits, no drift)."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tree(folder: Path) -> set[str]:
    return {
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def test_regenerated_stubs_match_committed(tmp_path: Path) -> None:
    out = tmp_path / "proto"
    subprocess.run([sys.executable, str(ROOT / "scripts/gen_protos.py"), str(out)], check=True, cwd=ROOT)
    committed = ROOT / "shared/proto"
    assert _tree(out) == _tree(committed)
    differing = [name for name in _tree(out) if not filecmp.cmp(out / name, committed / name, shallow=False)]
    assert differing == [], f"stale generated files (run `make proto`): {differing}"


def test_stubs_import_from_a_fresh_interpreter() -> None:
    code = (
        "from shared.proto.rollcall.importer.v1 import import_service_pb2 as m;"
        "from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as g;"
        "print(m.ImportMessage.DESCRIPTOR.full_name, g.IdentityServiceStub.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=ROOT / "tests"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["rollcall.importer.v1.ImportMessage", "IdentityServiceStub"]
