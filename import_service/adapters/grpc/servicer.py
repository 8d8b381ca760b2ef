"""ImportService over gRPC: protobuf in, one service call, protobuf out (errors → interceptor)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from import_service.adapters.grpc.convert import (
    archive_to_proto,
    header_from_proto,
    job_to_proto,
    outcomes_from_proto,
    record_to_proto,
)
from import_service.domain.messages import storable_text_problem
from import_service.service.decisions import JobDecisions
from import_service.service.jobs import JobQueries
from import_service.service.redrive import Redrives
from import_service.service.uploads import Uploads
from shared.errors import RollcallError, invalid
from shared.grpc_kit.auth import current_caller
from shared.proto.rollcall.importer.v1 import import_service_pb2 as pb
from shared.proto.rollcall.importer.v1 import import_service_pb2_grpc as pb_grpc

MAX_CHUNK_BYTES = 1024 * 1024
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0


class ImportServicer(pb_grpc.ImportServiceServicer):
    def __init__(
        self, queries: JobQueries, uploads: Uploads, redrives: Redrives, decisions: JobDecisions
    ) -> None:
        self._queries = queries
        self._uploads = uploads
        self._redrives = redrives
        self._decisions = decisions

    async def SubmitFile(
        self, request_iterator: AsyncIterator[pb.SubmitFileRequest], context: grpc.aio.ServicerContext
    ) -> pb.ImportJob:
        try:
            first = await anext(aiter(request_iterator), None)
            if first is None or first.WhichOneof("payload") != "header":
                raise invalid("header", "the first message must be the file header")
            header = header_from_proto(first.header)
            job = await self._uploads.submit(current_caller(), header, _chunks(request_iterator))
        except RollcallError:
            await _drain(request_iterator)
            raise
        return job_to_proto(job)

    async def GetImportJob(self, request: pb.GetImportJobRequest, context: Any) -> pb.ImportJob:
        return job_to_proto(await self._queries.get(current_caller(), request.job_id))

    async def ListImportJobs(
        self, request: pb.ListImportJobsRequest, context: Any
    ) -> pb.ListImportJobsResponse:
        jobs, token = await self._queries.list_jobs(
            current_caller(), request.school_id, request.page_size, request.page_token
        )
        return pb.ListImportJobsResponse(jobs=[job_to_proto(job) for job in jobs], next_page_token=token)

    async def WatchImportJob(
        self, request: pb.WatchImportJobRequest, context: Any
    ) -> AsyncIterator[pb.ImportJob]:
        async for job in self._queries.watch(current_caller(), request.job_id):
            yield job_to_proto(job)

    async def ListRowResults(
        self, request: pb.ListRowResultsRequest, context: Any
    ) -> pb.ListRowResultsResponse:
        outcomes = outcomes_from_proto(list(request.outcomes))
        records, token = await self._queries.rows(
            current_caller(), request.job_id, outcomes, request.page_size, request.page_token
        )
        return pb.ListRowResultsResponse(
            results=[record_to_proto(record) for record in records], next_page_token=token
        )

    async def ExportFailedRows(
        self, request: pb.ExportFailedRowsRequest, context: Any
    ) -> AsyncIterator[pb.ExportFailedRowsResponse]:
        async for chunk in self._queries.export_failed(current_caller(), request.job_id):
            yield pb.ExportFailedRowsResponse(csv_chunk=chunk)

    async def RetryFailedRows(self, request: pb.RetryFailedRowsRequest, context: Any) -> pb.ImportJob:
        if len(request.request_id) > 128:
            raise invalid("request_id", "at most 128 characters")
        if (problem := storable_text_problem(request.request_id)) is not None:
            raise invalid("request_id", problem)
        job = await self._redrives.retry_failed(
            current_caller(), request.job_id, request.sensitive_fields_update, request.request_id
        )
        return job_to_proto(job)

    async def ReleaseImportJob(self, request: pb.ReleaseImportJobRequest, context: Any) -> pb.ImportJob:
        job = await self._decisions.release(current_caller(), request.job_id, request.request_id)
        return job_to_proto(job)

    async def DiscardImportJob(self, request: pb.DiscardImportJobRequest, context: Any) -> pb.ImportJob:
        job = await self._decisions.discard(current_caller(), request.job_id, request.request_id)
        return job_to_proto(job)

    async def UndoImportJob(self, request: pb.UndoImportJobRequest, context: Any) -> pb.ImportJob:
        job = await self._decisions.undo(current_caller(), request.job_id, request.request_id)
        return job_to_proto(job)

    async def ListJobArchives(
        self, request: pb.ListJobArchivesRequest, context: Any
    ) -> pb.ListJobArchivesResponse:
        archives, token = await self._decisions.archives(
            current_caller(), request.job_id, request.page_size, request.page_token
        )
        return pb.ListJobArchivesResponse(
            archives=[archive_to_proto(archive) for archive in archives], next_page_token=token
        )


async def _drain(requests: AsyncIterator[pb.SubmitFileRequest]) -> None:
    """Read (and drop) what the client is still sending before refusing its upload: ending the call
    while its writes are in flight can surface to the client as INTERNAL "Internal error from Core"
    instead of our status. Bounded, so a client cannot hold the server with an endless stream."""
    read = 0
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for request in requests:
                read += request.ByteSize()
                if read > DRAIN_MAX_BYTES:
                    return


async def _chunks(requests: AsyncIterator[pb.SubmitFileRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("payload") != "chunk":
            raise invalid("header", "only the first message may be a header")
        if len(request.chunk) > MAX_CHUNK_BYTES:
            raise invalid("chunk", f"at most {MAX_CHUNK_BYTES} bytes per message")
        yield request.chunk
