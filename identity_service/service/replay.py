"""How stored answers are written for idempotent replay: JSON of the domain values, as bytes."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from identity_service.domain.email_changes import EmailChange, EmailChangeState
from identity_service.domain.users import User, UserOrigin, UserStatus, UserType
from identity_service.service.idempotency import Replay
from identity_service.service.models import BatchDecision, School


def _dump(value: object) -> bytes:
    fields = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value  # type: ignore[arg-type]
    return json.dumps(fields, default=_plain, separators=(",", ":")).encode()


def _plain(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


def _user(raw: bytes) -> User:
    return _user_of(json.loads(raw))


def _user_of(data: dict[str, Any]) -> User:
    return User(
        **{
            **data,
            "user_type": UserType(data["user_type"]),
            "status": UserStatus(data["status"]),
            "origin": UserOrigin(data["origin"]),
            "create_time": datetime.fromisoformat(data["create_time"]),
            "update_time": datetime.fromisoformat(data["update_time"]),
        }
    )


def _school(raw: bytes) -> School:
    data = json.loads(raw)
    return School(
        id=data["id"],
        name=data["name"],
        email_domains=tuple(data["email_domains"]),
        sso_enabled=data["sso_enabled"],
        create_time=datetime.fromisoformat(data["create_time"]),
        # answers stored before issue 9 have neither: the defaults a school then had
        change_threshold_percent=data.get("change_threshold_percent", 10),
        notify_emails=tuple(data.get("notify_emails", ())),
    )


def _email_change(raw: bytes) -> EmailChange:
    data = json.loads(raw)
    return EmailChange(
        **{
            **data,
            "state": EmailChangeState(data["state"]),
            "expire_time": datetime.fromisoformat(data["expire_time"]),
        }
    )


def _decisions(raw: bytes) -> list[BatchDecision]:
    return [
        BatchDecision(
            item["user_id"],
            _user_of(item["user"]) if item["user"] else None,
            item["error_reason"],
            item["error_message"],
        )
        for item in json.loads(raw)
    ]


USER: Replay[User] = Replay(_dump, _user)
BATCH_DECISIONS: Replay[list[BatchDecision]] = Replay(
    lambda items: _dump([dataclasses.asdict(item) for item in items]), _decisions
)
SCHOOL: Replay[School] = Replay(_dump, _school)
NOTHING: Replay[None] = Replay(lambda _: b"null", lambda _: None)
EMAIL_CHANGE: Replay[EmailChange] = Replay(_dump, _email_change)
