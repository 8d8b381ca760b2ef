"""The committed stubs in shared/proto, and the descriptor set reflection serves beside them
(rollcall.binpb), are exactly what protos/ generates (no hand edits, no drift)."""

from __future__ import annotations

import filecmp
import importlib
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = ROOT / "shared/proto/rollcall.binpb"


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


def _fields(
    messages: Iterable[descriptor_pb2.DescriptorProto],
) -> Iterable[descriptor_pb2.FieldDescriptorProto]:
    for message in messages:
        yield from message.field
        yield from message.extension
        yield from _fields(message.nested_type)


def test_descriptor_set_is_the_stubs_schema_with_comments_and_json_names() -> None:
    """What reflection serves describes exactly the messages the services encode, plus the comments
    (source info) and the JSON names grpcurl prints."""
    served = {
        f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file
    }
    protos = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    assert set(protos) <= served.keys()
    assert {"google/protobuf/timestamp.proto", "google/protobuf/field_mask.proto"} <= served.keys()  # imports
    for name in protos:
        file = served[name]
        assert any(location.leading_comments for location in file.source_code_info.location), name
        fields = list(_fields(file.message_type))
        assert all(field.json_name for field in fields), name
        module = importlib.import_module(
            "shared.proto." + name.removesuffix(".proto").replace("/", ".") + "_pb2"
        )
        stub = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        bare = descriptor_pb2.FileDescriptorProto()
        bare.CopyFrom(file)
        bare.ClearField("source_code_info")
        for field in _fields(bare.message_type):
            field.ClearField("json_name")
        assert bare == stub, f"{name}: the descriptor set and the _pb2 module disagree (run `make proto`)"
    school = next(
        m for m in served["rollcall/identity/v1/resources.proto"].message_type if m.name == "School"
    )
    assert {f.name: f.json_name for f in school.field}["email_domains"] == "emailDomains"
