"""Reflection answers from the generated descriptor set (comments, JSON names), and Health/List."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from shared.grpc_kit.reflection import DescriptorSetReflection, json_name, served_catalogue
from shared.grpc_kit.server import HEALTH_SERVICE, NOT_SERVING, SERVING, HealthServicer

IDENTITY = "rollcall.identity.v1.IdentityService"


def _reflection() -> DescriptorSetReflection:
    return DescriptorSetReflection([IDENTITY, HEALTH_SERVICE], served_catalogue())


def _files(response: reflection_pb2.ServerReflectionResponse) -> list[descriptor_pb2.FileDescriptorProto]:
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    return [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]


def test_lists_the_services_it_was_given() -> None:
    answer = _reflection().answer(reflection_pb2.ServerReflectionRequest(list_services="*"))
    assert [s.name for s in answer.list_services_response.service] == [HEALTH_SERVICE, IDENTITY]


def test_a_symbol_comes_with_its_comments_json_names_and_every_import() -> None:
    for symbol in (IDENTITY, f"{IDENTITY}.CreateSchool", "rollcall.identity.v1.School"):
        answer = _reflection().answer(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
        files = _files(answer)
        names = [f.name for f in files]
        assert names[0] in (
            "rollcall/identity/v1/identity_service.proto",
            "rollcall/identity/v1/resources.proto",
        )
        assert {"google/protobuf/timestamp.proto"} <= set(names)
        assert len(names) == len(set(names))
    service_file = _files(
        _reflection().answer(reflection_pb2.ServerReflectionRequest(file_containing_symbol=IDENTITY))
    )[0]
    comments = [loc.leading_comments for loc in service_file.source_code_info.location]
    assert any("Owns every user" in comment for comment in comments)
    resources = _files(
        _reflection().answer(
            reflection_pb2.ServerReflectionRequest(file_by_filename="rollcall/identity/v1/resources.proto")
        )
    )[0]
    school = next(m for m in resources.message_type if m.name == "School")
    assert [f.json_name for f in school.field][:5] == [
        "id",
        "name",
        "emailDomains",
        "ssoEnabled",
        "createTime",
    ]


def test_health_reflection_and_error_details_are_served_with_json_names() -> None:
    for symbol, message, field, name in (
        ("grpc.health.v1.Health", None, None, None),
        (
            "grpc.reflection.v1alpha.ServerReflection",
            "ServerReflectionRequest",
            "file_by_filename",
            "fileByFilename",
        ),
        ("google.rpc.BadRequest", "BadRequest", "field_violations", "fieldViolations"),
    ):
        files = _files(
            _reflection().answer(reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
        )
        if message is not None:
            described = next(m for m in files[0].message_type if m.name == message)
            assert {f.name: f.json_name for f in described.field}[field] == name
    error_details = _files(
        _reflection().answer(
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="google.rpc.ErrorInfo")
        )
    )
    assert [f.name for f in error_details] == [
        "google/rpc/error_details.proto",
        "google/protobuf/duration.proto",
    ]


def test_unknown_names_are_not_found_and_extensions_listed() -> None:
    reflection = _reflection()
    for request in (
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="rollcall.Nope"),
        reflection_pb2.ServerReflectionRequest(file_by_filename="nope.proto"),
        reflection_pb2.ServerReflectionRequest(
            file_containing_extension=reflection_pb2.ExtensionRequest(
                containing_type="rollcall.identity.v1.School", extension_number=100
            )
        ),
    ):
        answer = reflection.answer(request)
        assert answer.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
        assert answer.original_request == request
    numbers = reflection.answer(
        reflection_pb2.ServerReflectionRequest(all_extension_numbers_of_type="rollcall.identity.v1.School")
    )
    assert numbers.all_extension_numbers_response.base_type_name == "rollcall.identity.v1.School"
    assert list(numbers.all_extension_numbers_response.extension_number) == []
    empty = reflection.answer(reflection_pb2.ServerReflectionRequest())
    assert empty.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_json_names_as_protoc_makes_them() -> None:
    assert [json_name(n) for n in ("id", "email_domains", "field_violations", "a_b_c")] == [
        "id",
        "emailDomains",
        "fieldViolations",
        "aBC",
    ]


async def test_health_list_answers_every_status() -> None:
    health = HealthServicer()
    await health.set(IDENTITY, SERVING)
    await health.set("rollcall.liveness", NOT_SERVING)
    answer = await health.List(health_pb2.HealthListRequest(), None)  # type: ignore[arg-type]
    assert {name: status.status for name, status in answer.statuses.items()} == {
        "": SERVING,
        IDENTITY: SERVING,
        "rollcall.liveness": NOT_SERVING,
    }
