"""IdentityService over gRPC: each RPC turns its request into plain values, calls one use case and
turns the result into the reply. Roles are checked by the interceptor (``access_rules``); errors are
``RollcallError`` and become statuses there. ApplyStudentRows (the student file) is converted by
``student_file_convert`` and applied by ``service.student_file``, like any other RPC."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from google.protobuf import empty_pb2

from identity_service.adapters.grpc import converters as to
from identity_service.adapters.grpc.student_file_convert import request_from_proto, response_to_proto
from identity_service.adapters.grpc.undo_convert import undo_request_from_proto, undo_response_to_proto
from identity_service.service import (
    accounts,
    audit_trail,
    authentication,
    email_change,
    email_confirmation,
    file_updates,
    merge,
    pending,
    schools,
    search,
    sso,
)
from identity_service.service.email_change import CodeSettings
from identity_service.service.hashing import AsyncPasswordHasher
from identity_service.service.import_guard import get_import_guard
from identity_service.service.ports import UnitOfWorkFactory
from identity_service.service.roster_sweep import archive_students_not_in_job
from identity_service.service.student_file import apply_student_rows
from identity_service.service.undo import undo_student_rows
from shared.grpc_kit.auth import current_caller
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(
        self,
        new_uow: UnitOfWorkFactory,
        hasher: AsyncPasswordHasher,
        codes: CodeSettings | None = None,
    ) -> None:
        self._uow = new_uow
        self._hasher = hasher
        self._codes = codes or CodeSettings()

    async def CreateSchool(self, request: pb.CreateSchoolRequest, context: Context) -> res.School:
        school = await schools.create_school(
            self._uow,
            current_caller(),
            request.name,
            list(request.email_domains),
            request.sso_enabled,
            request.request_id,
            request.change_threshold_percent if request.HasField("change_threshold_percent") else None,
            list(request.notify_emails),
        )
        return to.school(school)

    async def GetSchool(self, request: pb.GetSchoolRequest, context: Context) -> res.School:
        return to.school(await schools.get_school(self._uow, request.id))

    async def UpdateSchool(self, request: pb.UpdateSchoolRequest, context: Context) -> res.School:
        wanted = request.school
        school = await schools.update_school(
            self._uow,
            current_caller(),
            wanted.id,
            list(request.update_mask.paths),
            request.request_id,
            name=wanted.name,
            email_domains=list(wanted.email_domains),
            sso_enabled=wanted.sso_enabled,
            change_threshold_percent=wanted.change_threshold_percent,
            notify_emails=list(wanted.notify_emails),
            muted_notifications=to.notification_kinds(wanted.muted_notifications),
        )
        return to.school(school)

    async def CreateUser(self, request: pb.CreateUserRequest, context: Context) -> res.User:
        user = await accounts.create_user(
            self._uow,
            current_caller(),
            user_type=to.user_type(request.user_type),
            school_id=request.school_id,
            email=request.email,
            username=request.username,
            first_name=request.first_name,
            last_name=request.last_name,
            auth_identifier=request.auth_identifier,
            request_id=request.request_id,
        )
        return to.user(user)

    async def SignUpStudent(self, request: pb.SignUpStudentRequest, context: Context) -> res.User:
        user = await accounts.sign_up_student(
            self._uow,
            self._hasher,
            current_caller(),
            school_id=request.school_id,
            email=request.email,
            first_name=request.first_name,
            last_name=request.last_name,
            password=request.password,
            request_id=request.request_id,
        )
        return to.user(user)

    async def ResolveSignIn(
        self, request: pb.ResolveSignInRequest, context: Context
    ) -> pb.ResolveSignInResponse:
        return to.sign_in(await accounts.resolve_sign_in_help(self._uow, request.email, request.school_id))

    async def Authenticate(self, request: pb.AuthenticateRequest, context: Context) -> res.User:
        user = await authentication.authenticate(self._uow, self._hasher, request.email, request.password)
        return to.user(user)

    async def ResolveSsoSignIn(self, request: pb.ResolveSsoSignInRequest, context: Context) -> res.User:
        return to.user(await sso.resolve_sso_sign_in(self._uow, request.school_id, request.subject))

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> res.User:
        return to.user(await accounts.get_user(self._uow, current_caller(), request.id))

    async def LookupUserByEmail(self, request: pb.LookupUserByEmailRequest, context: Context) -> res.User:
        return to.user(await accounts.lookup_user_by_email(self._uow, current_caller(), request.email))

    async def SearchUsers(self, request: pb.SearchUsersRequest, context: Context) -> pb.SearchUsersResponse:
        page = await search.search_users(
            self._uow,
            current_caller(),
            school_id=request.school_id,
            query=request.query,
            user_types=to.user_types(request.user_types),
            statuses=to.user_statuses(request.statuses),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.SearchUsersResponse(users=to.users(page.items), next_page_token=page.next_page_token)

    async def ListPendingStudents(
        self, request: pb.ListPendingStudentsRequest, context: Context
    ) -> pb.ListPendingStudentsResponse:
        page = await pending.list_pending_students(
            self._uow, current_caller(), request.school_id, request.page_size, request.page_token
        )
        users = to.users(page.items)
        return pb.ListPendingStudentsResponse(users=users, next_page_token=page.next_page_token)

    async def FindDuplicateCandidates(
        self, request: pb.FindDuplicateCandidatesRequest, context: Context
    ) -> pb.FindDuplicateCandidatesResponse:
        found = await search.find_duplicate_candidates(self._uow, current_caller(), request.user_id)
        return pb.FindDuplicateCandidatesResponse(candidates=[to.candidate(c) for c in found])

    async def ApproveStudent(self, request: pb.ApproveStudentRequest, context: Context) -> res.User:
        user = await pending.approve_student(
            self._uow, current_caller(), request.user_id, request.note, request.request_id
        )
        return to.user(user)

    async def DeclineStudent(self, request: pb.DeclineStudentRequest, context: Context) -> res.User:
        user = await pending.decline_student(
            self._uow, current_caller(), request.user_id, request.reason, request.request_id
        )
        return to.user(user)

    async def BatchApproveStudents(
        self, request: pb.BatchApproveStudentsRequest, context: Context
    ) -> pb.BatchDecideStudentsResponse:
        results = await pending.batch_approve_students(
            self._uow,
            current_caller(),
            request.school_id,
            list(request.user_ids),
            request.note,
            request.request_id,
        )
        return to.batch_decisions(results)

    async def BatchDeclineStudents(
        self, request: pb.BatchDeclineStudentsRequest, context: Context
    ) -> pb.BatchDecideStudentsResponse:
        results = await pending.batch_decline_students(
            self._uow,
            current_caller(),
            request.school_id,
            list(request.user_ids),
            request.reason,
            request.request_id,
        )
        return to.batch_decisions(results)

    async def DeletePendingStudent(
        self, request: pb.DeletePendingStudentRequest, context: Context
    ) -> empty_pb2.Empty:
        await pending.delete_pending_student(self._uow, current_caller(), request.user_id, request.request_id)
        return empty_pb2.Empty()

    async def MergePendingStudent(
        self, request: pb.MergePendingStudentRequest, context: Context
    ) -> res.EmailChange:
        change = await merge.merge_pending_student(
            self._uow,
            self._codes,
            current_caller(),
            pending_user_id=request.pending_user_id,
            existing_user_id=request.existing_user_id,
            request_id=request.request_id,
        )
        return to.email_change(change)

    async def RequestEmailChange(
        self, request: pb.RequestEmailChangeRequest, context: Context
    ) -> res.EmailChange:
        change = await email_change.request_email_change(
            self._uow,
            self._codes,
            current_caller(),
            user_id=request.user_id,
            new_email=request.new_email,
            disable_file_updates=request.disable_file_updates,
            request_id=request.request_id,
        )
        return to.email_change(change)

    async def ConfirmEmailChange(self, request: pb.ConfirmEmailChangeRequest, context: Context) -> res.User:
        user = await email_confirmation.confirm_email_change(
            self._uow,
            self._hasher,
            self._codes,
            current_caller(),
            user_id=request.user_id,
            code=request.code,
            new_password=request.new_password,
        )
        return to.user(user)

    async def CancelEmailChange(
        self, request: pb.CancelEmailChangeRequest, context: Context
    ) -> res.EmailChange:
        change = await email_change.cancel_email_change(
            self._uow, current_caller(), request.user_id, request.request_id
        )
        return to.email_change(change)

    async def SetFileUpdates(self, request: pb.SetFileUpdatesRequest, context: Context) -> res.User:
        user = await file_updates.set_file_updates(
            self._uow, current_caller(), request.user_id, request.enabled, request.request_id
        )
        return to.user(user)

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Context
    ) -> pb.ListAuditEventsResponse:
        page = await audit_trail.list_audit_events(
            self._uow,
            current_caller(),
            request.school_id,
            request.user_id,
            request.page_size,
            request.page_token,
        )
        events = [to.audit_event(event) for event in page.items]
        return pb.ListAuditEventsResponse(events=events, next_page_token=page.next_page_token)

    async def ApplyStudentRows(
        self, request: pb.ApplyStudentRowsRequest, context: Context
    ) -> pb.ApplyStudentRowsResponse:
        batch = request_from_proto(request)
        return response_to_proto(await apply_student_rows(self._uow, batch, current_caller().client))

    async def ArchiveStudentsNotInJob(
        self, request: pb.ArchiveStudentsNotInJobRequest, context: Context
    ) -> pb.ArchiveStudentsNotInJobResponse:
        caller, school, job = current_caller(), request.school_id, request.job_id
        return to.sweep(await archive_students_not_in_job(self._uow, caller, school, job, request.dry_run))

    async def UndoStudentRows(
        self, request: pb.UndoStudentRowsRequest, context: Context
    ) -> pb.UndoStudentRowsResponse:
        undo = undo_request_from_proto(request)
        return undo_response_to_proto(await undo_student_rows(self._uow, undo, current_caller().client))

    async def GetImportGuard(self, request: pb.GetImportGuardRequest, context: Context) -> pb.ImportGuard:
        return to.import_guard(await get_import_guard(self._uow, request.school_id))
