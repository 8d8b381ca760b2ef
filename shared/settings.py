"""Configuration of both services: environment variables with the ``ROLLCALL_`` prefix.

Validated at start-up; a bad value stops the process with one line naming the variable.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Role(StrEnum):
    """What an authenticated client may do (api.md, Conventions)."""

    ADMIN = "admin"
    PLATFORM = "platform"
    IMPORTER = "importer"


@dataclass(frozen=True)
class ClientToken:
    """One client: its name (shown in audit and logs), its role, and the SHA-256 of its token."""

    name: str
    role: Role
    token_sha256: bytes


def parse_tokens(spec: str) -> tuple[ClientToken, ...]:
    """Parse ``name:role:token`` entries, comma- or newline-separated. Only hashes are kept."""
    tokens: list[ClientToken] = []
    for raw in spec.replace("\n", ",").split(","):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise ValueError("each entry must be name:role:token")
        name, role, token = (p.strip() for p in parts)
        if role not in Role.__members__.values():
            raise ValueError(f"role of {name!r} must be one of admin, platform, importer")
        if len(token) < 16:
            raise ValueError(f"token of {name!r} is shorter than 16 characters")
        tokens.append(ClientToken(name, Role(role), hashlib.sha256(token.encode()).digest()))
    return tuple(tokens)


_OTLP_ENDPOINT = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?/?")


class Environment(StrEnum):
    DEV = "dev"
    PROD = "prod"


class Settings(BaseSettings):
    """Every ``ROLLCALL_*`` variable (README, Configuration)."""

    model_config = SettingsConfigDict(env_prefix="ROLLCALL_", extra="ignore")

    env: Environment = Environment.DEV
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    identity_database_url: str = "postgresql://localhost/rollcall_identity"
    import_database_url: str = "postgresql://localhost/rollcall_import"
    # one broker URL, or several comma-separated (the nodes of a cluster, tried in turn: shared/amqp/connect)
    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    amqp_prefix: str = Field(default="rollcall", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    identity_addr: str = "localhost:50051"
    identity_host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces by design
    identity_port: int = Field(default=50051, ge=0, le=65535)
    import_port: int = Field(default=50052, ge=0, le=65535)
    identity_metrics_port: int = Field(default=9101, ge=0, le=65535)
    import_metrics_port: int = Field(default=9102, ge=0, le=65535)
    courier_metrics_port: int = Field(default=9103, ge=0, le=65535)
    relay_metrics_port: int = Field(default=9104, ge=0, le=65535)
    import_relay_metrics_port: int = Field(default=9105, ge=0, le=65535)
    relay_health_port: int = Field(default=50053, ge=0, le=65535)
    import_relay_health_port: int = Field(default=50054, ge=0, le=65535)
    # events (api.md "Events"): body format, and how long published outbox rows are kept
    events_content_type: str = Field(default="application/json", pattern=r"^application/(json|x-protobuf)$")
    events_retention_hours: float = Field(default=168.0, gt=0, le=24 * 90)
    tokens: str = ""
    tokens_file: Path | None = None
    import_token: str = ""
    code_secret: Annotated[list[str], NoDecode] = Field(default_factory=list)
    code_lifetime_hours: float = Field(default=24.0, gt=0, le=24 * 14)
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    mail_from: str = "no-reply@localhost"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    identity_tls_ca: Path | None = None
    db_pool_min: int = Field(default=2, ge=1, le=100)
    db_pool_max: int = Field(default=10, ge=1, le=200)
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=300)
    # measured with bench/import_throughput.py (docs/decisions.md, "Import throughput")
    import_batch_rows: int = Field(default=1000, ge=1, le=1000)
    import_batch_wait_ms: int = Field(default=200, ge=1, le=10_000)
    import_batches_in_flight: int = Field(default=4, ge=1, le=64)
    import_prefetch: int = Field(default=2000, ge=1, le=65535)
    identity_call_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # ArchiveStudentsNotInJob and UndoStudentRows: a whole school's students in one call
    identity_long_call_timeout_seconds: float = Field(default=600.0, gt=0, le=3600)
    # amqp_user:school_id|* entries: who publishes rows for which school (import_service/domain/connectors)
    connectors: str = ""
    # argon2id lanes (identity_service/service/hashing.py): 0 = the CPUs, at most 4
    password_hash_slots: int = Field(default=0, ge=0, le=64)
    sign_in_slots: int = Field(default=0, ge=0, le=64)
    password_hash_nice: int = Field(default=10, ge=0, le=19)
    # OTLP/gRPC collector for traces (shared/tracing.py); unset: no tracing at all
    otlp_endpoint: str | None = None

    @field_validator("code_secret", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _OTLP_ENDPOINT.fullmatch(value.strip()):
            raise ValueError("must be http://host:port (plaintext) or https://host:port (TLS)")
        return value.strip()

    @field_validator("connectors")
    @classmethod
    def _check_connectors(cls, value: str) -> str:
        from import_service.domain.connectors import parse_connectors  # pure, no I/O

        parse_connectors(value)
        return value

    @field_validator("amqp_url")
    @classmethod
    def _check_amqp_url(cls, value: str) -> str:
        from urllib.parse import unquote, urlsplit

        urls = [u.strip() for u in value.split(",") if u.strip()]
        if not urls:
            raise ValueError("names no broker URL")
        users = set()
        for url in urls:
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                raise ValueError("holds an unparsable URL") from None
            if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
                raise ValueError("each URL must be amqp://host[:port]/vhost or amqps://…")
            users.add(unquote(parts.username or ""))
        if len(users) > 1:
            raise ValueError("every URL must name the same user (one AMQP identity for the whole cluster)")
        return ",".join(urls)

    @property
    def amqp_urls(self) -> list[str]:
        """``amqp_url`` split: the broker's nodes, in the order they are tried."""
        return self.amqp_url.split(",")

    @field_validator("tokens")
    @classmethod
    def _check_tokens(cls, value: str) -> str:
        parse_tokens(value)
        return value

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("ROLLCALL_TLS_CERT and ROLLCALL_TLS_KEY go together")
        if self.identity_tls_ca is not None and not self.identity_tls_ca.is_file():
            raise ValueError("ROLLCALL_IDENTITY_TLS_CA must name a readable file")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("ROLLCALL_TLS_CLIENT_CA needs ROLLCALL_TLS_CERT and ROLLCALL_TLS_KEY")
        if self.identity_long_call_timeout_seconds < self.identity_call_timeout_seconds:
            raise ValueError(
                "ROLLCALL_IDENTITY_LONG_CALL_TIMEOUT_SECONDS is shorter than"
                " ROLLCALL_IDENTITY_CALL_TIMEOUT_SECONDS"
            )
        if self.env is Environment.PROD:
            if not self.code_secret or any(len(s) < 32 for s in self.code_secret):
                raise ValueError("ROLLCALL_CODE_SECRET: at least one secret of 32+ characters in prod")
            if not self.client_tokens():
                raise ValueError("ROLLCALL_TOKENS (or ROLLCALL_TOKENS_FILE) is required in prod")
        return self

    def client_tokens(self) -> tuple[ClientToken, ...]:
        spec = self.tokens
        if self.tokens_file is not None:
            spec = f"{spec},{self.tokens_file.read_text()}"
        return parse_tokens(spec)

    def code_keys(self) -> list[bytes]:
        """Keys for hashing confirmation codes, current first. Dev falls back to a fixed key."""
        if self.code_secret:
            return [s.encode() for s in self.code_secret]
        return [b"rollcall-dev-only-code-secret-not-for-production"]


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, exiting with one clear line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = "_".join(str(p) for p in err["loc"]).upper()
            name = f"ROLLCALL_{loc}" if loc else "configuration"
            lines.append(f"{name}: {err['msg']}")
        raise SystemExit("invalid configuration:\n  " + "\n  ".join(lines)) from None
