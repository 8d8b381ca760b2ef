"""The student-file decision table of product.md ("Import rules"), as pure functions.

``validate_row`` is row 1 of the table; ``decide`` is rows 2-9, in that order of precedence, for a
valid row at school S given U (the student of S with the row's username) and E (the user, of any type
and school, with the row's email). The caller loads U and E, writes what the decision says, and
records it. Dry runs use the very same decisions. The row types live in import_rows.py.

Status rules beyond the table:

- a PENDING student matched by a row that is applied (rows 6 and 7) is approved: ``approved`` is True,
  ``new_status`` is ACTIVE and the outcome is UPDATED even when no field changes;
- a DECLINED student matched by a row stays DECLINED (staff declined them; a file does not overturn
  that), although the row may still update their fields;
- ONGOING_SYNC never changes sensitive fields, whatever ``sensitive_fields_update`` says;
- a blank stored auth identifier may be filled by any row (it is set, not changed); replacing a
  non-blank one with a different one is a sensitive change (row 9).

Field rules: a blank first/last name or auth identifier in the row leaves the stored value; username
and email differing only in letter case are not changes. ``changes`` uses User field names (``email``,
not ``email_address``) and lists only fields whose value really changes.
"""

from __future__ import annotations

from identity_service.domain.emails import normalise_email
from identity_service.domain.fields import (
    AUTH_IDENTIFIER_MAX,
    NAME_MAX,
    USERNAME_MAX,
    Violations,
    clean_extra,
    clean_text,
)
from identity_service.domain.identity_keys import email_key, username_key
from identity_service.domain.import_rows import (
    SENSITIVE_FIELDS_MESSAGE,
    Holder,
    ImportContext,
    ImportMode,
    IncomingRow,
    NewStudent,
    RowDecision,
    RowOutcome,
    RowReason,
    ValidRow,
)
from identity_service.domain.users import UserStatus
from shared.errors import Reason, RollcallError

__all__ = [
    "SENSITIVE_FIELDS_MESSAGE",
    "Holder",
    "ImportContext",
    "ImportMode",
    "IncomingRow",
    "NewStudent",
    "RowDecision",
    "RowOutcome",
    "RowReason",
    "ValidRow",
    "decide",
    "validate_row",
]


def validate_row(row: IncomingRow) -> ValidRow | RowDecision:
    """Row 1: the cleaned row, or a FAILED INVALID_ROW decision whose message names every bad field."""
    try:  # the common case, every field fine, without gathering (a file is mostly good rows)
        if row.row_number >= 1:
            return ValidRow(
                row.row_number,
                clean_text(row.username, "username", max_len=USERNAME_MAX, required=True),
                normalise_email(row.email_address, "email_address"),
                clean_text(row.first_name, "first_name", max_len=NAME_MAX),
                clean_text(row.last_name, "last_name", max_len=NAME_MAX),
                clean_text(row.auth_identifier, "auth_identifier", max_len=AUTH_IDENTIFIER_MAX),
                clean_extra(row.extra) if row.extra else {},
            )
    except RollcallError as error:
        if error.reason is Reason.EMAIL_CONFUSABLE:
            return RowDecision(row.row_number, RowOutcome.FAILED, RowReason.EMAIL_CONFUSABLE, error.message)
    return _invalid_row(row)


def _invalid_row(row: IncomingRow) -> RowDecision:
    """The FAILED INVALID_ROW decision naming every bad field of ``row``."""
    check = Violations()
    if row.row_number < 1:
        check.add("row_number", "must be 1 or more")
    check.text(row.username, "username", max_len=USERNAME_MAX, required=True)
    check.check(lambda: normalise_email(row.email_address, "email_address"), "")
    check.text(row.first_name, "first_name", max_len=NAME_MAX)
    check.text(row.last_name, "last_name", max_len=NAME_MAX)
    check.text(row.auth_identifier, "auth_identifier", max_len=AUTH_IDENTIFIER_MAX)
    no_extra: dict[str, str] = {}
    check.check(lambda: clean_extra(row.extra), no_extra)
    return RowDecision(row.row_number, RowOutcome.FAILED, RowReason.INVALID_ROW, check.message())


def decide(
    row: ValidRow,
    by_username: Holder | None,
    by_email: Holder | None,
    ctx: ImportContext,
    lookalike: Holder | None = None,
) -> RowDecision:
    """Rows 2-9 of the table, first match wins. ``by_username`` is U, ``by_email`` is E (None: nobody);
    ``lookalike`` is a user whose address looks like the row's without being it (identity_keys)."""
    if by_email is not None and not by_email.is_student_of(ctx.school_id):
        return _failed(row, RowReason.EMAIL_TAKEN, "email_address is already used by another user")
    if by_email is None and lookalike is not None:
        return _failed(
            row, RowReason.EMAIL_CONFUSABLE, "email_address looks like an address another user already has"
        )
    if by_username is not None and not by_username.is_student_of(ctx.school_id):
        # Not reachable when U is looked up among the school's students; refused rather than touched.
        return _failed(
            row, RowReason.IDENTITY_CONFLICT, "username belongs to a user who is not a student here"
        )
    if by_username is not None and by_email is not None and by_username.id != by_email.id:
        return _failed(
            row, RowReason.IDENTITY_CONFLICT, "username and email_address belong to two different students"
        )
    target = by_username or by_email
    if target is None:
        return _create(row, ctx)
    if target.file_updates_disabled:
        return RowDecision(
            row.row_number,
            RowOutcome.SKIPPED,
            RowReason.FILE_UPDATES_DISABLED,
            "file updates are disabled for this student",
            user_id=target.id,
        )
    if by_username is not None and by_email is not None:
        return _update_matched(row, target, ctx)
    return _update_sensitive(row, target, ctx)


def _create(row: ValidRow, ctx: ImportContext) -> RowDecision:
    """Row 4: a new ACTIVE student of origin STUDENT_FILE."""
    student = NewStudent(
        school_id=ctx.school_id,
        username=row.username,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        auth_identifier=row.auth_identifier,
    )
    return RowDecision(row.row_number, RowOutcome.CREATED, None, "student created", create=student)


def _update_matched(row: ValidRow, target: Holder, ctx: ImportContext) -> RowDecision:
    """Row 6 (username and email name the same student), unless row 9 refuses an auth identifier change."""
    changes = _ordinary_changes(row, target)
    auth_change = _auth_identifier_change(row, target)
    if auth_change is not None:
        if target.auth_identifier and not ctx.may_update_sensitive_fields:
            return _failed(
                row,
                RowReason.SENSITIVE_FIELDS_REQUIRED,
                f"{SENSITIVE_FIELDS_MESSAGE} (auth_identifier differs from the stored one)",
            )
        changes["auth_identifier"] = auth_change
    return _applied(row, target, changes)


def _update_sensitive(row: ValidRow, target: Holder, ctx: ImportContext) -> RowDecision:
    """Rows 7 and 8: only one of U and E exists, so the username or the email would change."""
    if not ctx.may_update_sensitive_fields:
        return _failed(row, RowReason.SENSITIVE_FIELDS_REQUIRED, SENSITIVE_FIELDS_MESSAGE)
    changes = _ordinary_changes(row, target)
    if username_key(target.username or "") != username_key(row.username):
        changes["username"] = row.username
    if email_key(target.email) != row.email_key:
        changes["email"] = row.email
    auth_change = _auth_identifier_change(row, target)
    if auth_change is not None:
        changes["auth_identifier"] = auth_change
    return _applied(row, target, changes)


def _applied(row: ValidRow, target: Holder, changes: dict[str, str]) -> RowDecision:
    approved = target.status is UserStatus.PENDING
    if not changes and not approved:
        return RowDecision(row.row_number, RowOutcome.UNCHANGED, None, "no changes", user_id=target.id)
    parts = [f"updated {', '.join(changes)}"] if changes else []
    parts += ["approved"] if approved else []
    return RowDecision(
        row.row_number,
        RowOutcome.UPDATED,
        None,
        "; ".join(parts),
        approved=approved,
        user_id=target.id,
        changes=changes,
        new_status=UserStatus.ACTIVE if approved else None,
    )


def _ordinary_changes(row: ValidRow, target: Holder) -> dict[str, str]:
    changes: dict[str, str] = {}
    if row.first_name and row.first_name != target.first_name:
        changes["first_name"] = row.first_name
    if row.last_name and row.last_name != target.last_name:
        changes["last_name"] = row.last_name
    return changes


def _auth_identifier_change(row: ValidRow, target: Holder) -> str | None:
    if row.auth_identifier and row.auth_identifier != target.auth_identifier:
        return row.auth_identifier
    return None


def _failed(row: ValidRow, reason: RowReason, message: str) -> RowDecision:
    return RowDecision(row.row_number, RowOutcome.FAILED, reason, message)
