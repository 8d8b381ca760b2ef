"""The house's one rule of imports: a use case (``<service>/service/``) imports ports and the domain,
never its service's adapters (checked by walking every module's imports with ``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def adapter_imports(service: str) -> list[str]:
    found = []
    for path in sorted((ROOT / service / "service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if ".adapters" in n or n.endswith("adapters")
            ]
    return found


@pytest.mark.parametrize("service", ["identity_service", "import_service"])
def test_use_cases_never_import_adapters(service: str) -> None:
    assert adapter_imports(service) == []
