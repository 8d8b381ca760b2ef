"""Server reflection from the descriptor set generated beside the stubs (``shared/proto/rollcall.binpb``).

grpcio-reflection answers with what a ``DescriptorPool`` holds, serialised again with ``CopyToProto``:
that drops the source info (the comments), and the descriptors of the ``_pb2`` modules carry no
``json_name`` either, so grpcurl printed ``email_domains`` and ``describe`` showed no documentation.
This servicer answers with each ``FileDescriptorProto`` exactly as protoc wrote it into the set at
``make proto`` time (comments, JSON names) and uses a pool built from the same set only to find which
file defines a symbol or an extension.

Besides the set, the catalogue holds the protos of the other services a server runs (health,
reflection) and ``google/rpc/error_details.proto``, so grpcurl can resolve and print the
``ErrorInfo`` / ``BadRequest`` details of an error; their JSON names are filled in the way protoc
fills them.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

DESCRIPTOR_SET_NAME = "rollcall.binpb"
SERVICE_NAME = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
# the protos a server serves besides its own (health, reflection) and the error details it sends
EXTRA_MODULES: tuple[ModuleType, ...] = (health_pb2, reflection_pb2, error_details_pb2)


def json_name(field_name: str) -> str:
    """protoc's default JSON name: underscores dropped, the letter after each one upper-cased."""
    head, *rest = field_name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _fill_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in (*message.field, *message.extension):
            if not field.HasField("json_name"):
                field.json_name = json_name(field.name)
        _fill_json_names(message.nested_type)


@dataclass(frozen=True)
class DescriptorCatalogue:
    """Serialised ``FileDescriptorProto``s by file name, and a pool built from them."""

    files: Mapping[str, bytes]
    pool: descriptor_pool.DescriptorPool

    @classmethod
    def from_set(
        cls, serialized_set: bytes, extra: Sequence[descriptor.FileDescriptor] = ()
    ) -> DescriptorCatalogue:
        protos: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        for proto in descriptor_pb2.FileDescriptorSet.FromString(serialized_set).file:
            protos.setdefault(proto.name, proto)  # protoc writes dependencies before their users

        def add(file: descriptor.FileDescriptor) -> None:
            if file.name in protos:
                return
            for dependency in file.dependencies:
                add(dependency)
            proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(proto)
            _fill_json_names(proto.message_type)
            for extension in proto.extension:
                if not extension.HasField("json_name"):
                    extension.json_name = json_name(extension.name)
            protos[proto.name] = proto

        for file in extra:
            add(file)
        pool = descriptor_pool.DescriptorPool()
        for proto in protos.values():
            pool.Add(proto)
        return cls({name: proto.SerializeToString() for name, proto in protos.items()}, pool)

    def file_with_dependencies(self, name: str) -> list[bytes]:
        """The file and every file it imports, transitively (the file first); KeyError if unknown."""
        order: list[str] = []

        def visit(file: descriptor.FileDescriptor) -> None:
            if file.name in order:
                return
            order.append(file.name)
            for dependency in file.dependencies:
                visit(dependency)

        visit(self.pool.FindFileByName(name))
        return [self.files[file] for file in order]

    def file_containing_symbol(self, symbol: str) -> str:
        try:
            return str(self.pool.FindFileContainingSymbol(symbol).name)
        except KeyError:
            # a method (grpcurl describe Service.Method): the pool finds only its service
            service_name, _, method = symbol.rpartition(".")
            service = self.pool.FindServiceByName(service_name)
            if method not in service.methods_by_name:
                raise
            return str(service.file.name)

    def file_containing_extension(self, containing_type: str, number: int) -> str:
        message = self.pool.FindMessageTypeByName(containing_type)
        extension = self.pool.FindExtensionByNumber(message, number)
        return str(self.pool.FindFileContainingSymbol(extension.full_name).name)

    def extension_numbers(self, containing_type: str) -> list[int]:
        message = self.pool.FindMessageTypeByName(containing_type)
        return sorted(extension.number for extension in self.pool.FindAllExtensions(message))


@functools.cache
def served_catalogue() -> DescriptorCatalogue:
    """The catalogue of the generated set, read once per process. The set is generated with the stubs
    and installed with them (package data); without it the servers would not start."""
    serialized = (files("shared.proto") / DESCRIPTOR_SET_NAME).read_bytes()
    return DescriptorCatalogue.from_set(serialized, [module.DESCRIPTOR for module in EXTRA_MODULES])


def _error(request: Any, code: grpc.StatusCode) -> reflection_pb2.ServerReflectionResponse:
    return reflection_pb2.ServerReflectionResponse(
        error_response=reflection_pb2.ErrorResponse(error_code=code.value[0], error_message=code.value[1]),
        original_request=request,
    )


class DescriptorSetReflection(reflection_pb2_grpc.ServerReflectionServicer):
    """``grpc.reflection.v1alpha.ServerReflection`` over a ``DescriptorCatalogue`` (asyncio)."""

    def __init__(self, service_names: Iterable[str], catalogue: DescriptorCatalogue) -> None:
        self._service_names = tuple(sorted(set(service_names)))
        self._catalogue = catalogue

    async def ServerReflectionInfo(
        self, request_iterator: AsyncIterator[reflection_pb2.ServerReflectionRequest], context: Any
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        async for request in request_iterator:
            yield self.answer(request)

    def answer(
        self, request: reflection_pb2.ServerReflectionRequest
    ) -> reflection_pb2.ServerReflectionResponse:
        catalogue = self._catalogue
        kind = request.WhichOneof("message_request")
        try:
            if kind == "list_services":
                return reflection_pb2.ServerReflectionResponse(
                    list_services_response=reflection_pb2.ListServiceResponse(
                        service=[reflection_pb2.ServiceResponse(name=name) for name in self._service_names]
                    ),
                    original_request=request,
                )
            if kind == "all_extension_numbers_of_type":
                return reflection_pb2.ServerReflectionResponse(
                    all_extension_numbers_response=reflection_pb2.ExtensionNumberResponse(
                        base_type_name=request.all_extension_numbers_of_type,
                        extension_number=catalogue.extension_numbers(request.all_extension_numbers_of_type),
                    ),
                    original_request=request,
                )
            if kind == "file_by_filename":
                name = request.file_by_filename
            elif kind == "file_containing_symbol":
                name = catalogue.file_containing_symbol(request.file_containing_symbol)
            elif kind == "file_containing_extension":
                wanted = request.file_containing_extension
                name = catalogue.file_containing_extension(wanted.containing_type, wanted.extension_number)
            else:
                return _error(request, grpc.StatusCode.INVALID_ARGUMENT)
            return reflection_pb2.ServerReflectionResponse(
                file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                    file_descriptor_proto=catalogue.file_with_dependencies(name)
                ),
                original_request=request,
            )
        except KeyError:
            return _error(request, grpc.StatusCode.NOT_FOUND)


def enable_server_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection of ``service_names`` (list) and every descriptor of the catalogue."""
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        DescriptorSetReflection(service_names, served_catalogue()), server
    )
