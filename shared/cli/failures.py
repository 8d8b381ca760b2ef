"""What the ``rollcall`` command prints when something goes wrong: always ONE line on stderr,
``error <gRPC code> <reason>: <message>``, and a non-zero exit; with ``--json`` a JSON object on
stderr instead, ``{"error": {"code", "reason", "message", ...}}``.

- A refused call keeps the service's gRPC code and ``ErrorInfo`` reason (``SCHOOL_NOT_FOUND``,
  ``JOB_NOT_HELD`` ...), with the ErrorInfo metadata and BadRequest violations in the JSON. A call
  that failed without an ErrorInfo (a service not running, a timeout) gets a reason of the CLI's
  own (``SERVICE_UNREACHABLE``, ``TIMED_OUT``, ``NO_ERROR_INFO``) and names the service's address.
- Broker problems name the broker URL with its password masked (``mask_url``) and, when an exchange
  is missing, the exchange.
- Exit codes: 1 for a refusal or a failure, 2 for a usage error or an unexpected exception (a bug:
  its traceback only with ``--debug`` or ``ROLLCALL_CLI_DEBUG=1``).

The reasons below are the CLI's own; the services' are ``shared.errors.Reason``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
from rich.console import Console
from rich.markup import escape

from import_service.domain.rows import FileFormatError
from shared.errors import RollcallError
from shared.grpc_kit.errors import error_info, field_violations, status_code_for

USAGE = "USAGE"
UNEXPECTED = "UNEXPECTED"
ABORTED = "ABORTED"
SERVICE_UNREACHABLE = "SERVICE_UNREACHABLE"
TIMED_OUT = "TIMED_OUT"
NO_ERROR_INFO = "NO_ERROR_INFO"
INVALID_FILE = "INVALID_FILE"
LOCAL_FILE = "LOCAL_FILE"
BROKER_UNREACHABLE = "BROKER_UNREACHABLE"
BROKER_LOGIN_REFUSED = "BROKER_LOGIN_REFUSED"
BROKER_ACCESS_REFUSED = "BROKER_ACCESS_REFUSED"
EXCHANGE_NOT_FOUND = "EXCHANGE_NOT_FOUND"
PUBLISH_FAILED = "PUBLISH_FAILED"

DEBUG_ENV = "ROLLCALL_CLI_DEBUG"
EXIT_FAILED = 1
EXIT_USAGE_OR_BUG = 2
MASK = "***"


class CliError(Exception):
    """An error the CLI reports as one line (``line``) or, with ``--json``, as ``payload``."""

    def __init__(
        self,
        code: str,
        reason: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        exit_code: int = EXIT_FAILED,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = " ".join(message.split())  # one line, whatever the service's text
        self.details = dict(details or {})
        self.exit_code = exit_code

    def line(self) -> str:
        return f"error {self.code} {self.reason}: {self.message}"

    def payload(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "reason": self.reason, "message": self.message, **self.details}}


def mask_url(url: str) -> str:
    """``amqp://connector:s3cret@host:5672/vh`` → ``amqp://connector:***@host:5672/vh``; several
    comma-separated URLs (a cluster's nodes) each masked."""
    if "," in url:
        return ",".join(mask_url(part.strip()) for part in url.split(","))
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<an unparsable URL>"
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def without_secret(text: str, url: str) -> str:
    """``text`` with the URL's password masked wherever it appears (a library's message may quote it);
    of several comma-separated URLs, every one's."""
    if "," in url:
        for part in url.split(","):
            text = without_secret(text, part.strip())
        return text
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, MASK) if password else text


def from_rpc(error: grpc.aio.AioRpcError | grpc.RpcError, service: tuple[str, str] | None) -> CliError:
    """A failed call: its code and ErrorInfo reason, or, without one, the CLI's reason naming the
    service (``service``: its name and address, when known)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details_text = (error.details() if hasattr(error, "details") else "") or ""
    info = error_info(error)
    extra: dict[str, Any] = {}
    if info is not None and info.reason:
        if info.metadata:
            extra["metadata"] = dict(info.metadata)
        violations = field_violations(error)
        if violations:
            extra["violations"] = [{"field": f, "description": d} for f, d in violations]
        return CliError(code.name, info.reason, details_text or code.name.lower(), extra)
    name, address = service if service is not None else ("service", "")
    if address:
        extra["address"] = address
    where = f"the {name} at {address}" if address else f"the {name}"
    if code is grpc.StatusCode.UNAVAILABLE:
        message = f"cannot reach {where} (is it running?): {details_text}"
        return CliError(code.name, SERVICE_UNREACHABLE, message, extra)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(code.name, TIMED_OUT, f"{where} did not answer in time: {details_text}", extra)
    return CliError(code.name, NO_ERROR_INFO, f"{where}: {details_text or code.name.lower()}", extra)


def from_known(error: BaseException, service: tuple[str, str] | None = None) -> CliError | None:
    """The CLI error for an exception it knows how to explain; None for anything else (a bug)."""
    if isinstance(error, CliError):
        return error
    if isinstance(error, grpc.RpcError):
        return from_rpc(error, service)
    if isinstance(error, FileFormatError):
        return CliError("INVALID_ARGUMENT", INVALID_FILE, str(error))
    if isinstance(error, RollcallError):
        return CliError(status_code_for(error.reason).name, str(error.reason), error.message)
    if isinstance(error, OSError) and not isinstance(error, ConnectionError):
        code = "UNKNOWN"
        if isinstance(error, FileNotFoundError):
            code = "NOT_FOUND"
        elif isinstance(error, PermissionError):
            code = "PERMISSION_DENIED"
        where = f": {error.filename}" if error.filename else ""
        return CliError(code, LOCAL_FILE, f"{error.strerror or error}{where}")
    return None


def unexpected(error: BaseException, debug: bool) -> CliError:
    """An exception the CLI did not expect: one line naming it, exit 2 (``debug``: its traceback
    was printed, so the line does not point to ``--debug``)."""
    text = " ".join(str(error).split()) or "no message"
    hint = "" if debug else f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"
    return CliError(
        "INTERNAL",
        UNEXPECTED,
        f"{type(error).__name__}: {text}{hint}",
        {"exception": type(error).__name__},
        exit_code=EXIT_USAGE_OR_BUG,
    )


def debug_on(args: list[str] | None = None) -> bool:
    """``--debug`` among the arguments (before ``--``) or ``ROLLCALL_CLI_DEBUG`` set (1, true, yes)."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return args is not None and "--debug" in _options(args)


def json_wanted(args: list[str]) -> bool:
    return "--json" in _options(args)


def _options(args: list[str]) -> list[str]:
    return args[: args.index("--")] if "--" in args else args


def report(error: CliError, as_json: bool) -> None:
    """Writes ``error`` to stderr: one line, or the JSON object."""
    if as_json:
        print(json.dumps(error.payload(), ensure_ascii=False), file=sys.stderr, flush=True)
        return
    Console(stderr=True).print(
        f"[red]error[/red] {escape(error.line().removeprefix('error '))}",
        soft_wrap=True,
        highlight=False,
    )
