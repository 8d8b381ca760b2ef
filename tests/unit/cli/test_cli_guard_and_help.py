"""The ``rollcall`` command's guard and help: a usage error is one line (exit 2); an exception the
CLI did not expect is one line naming it (exit 2), its traceback only with ``--debug`` or
``ROLLCALL_CLI_DEBUG=1``; ``main()`` (the installed script) behaves the same in a real process;
help names every option with its own metavar and a help text, and fits 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from shared.cli import failures
from shared.cli import main as cli_main
from shared.cli.failures import CliError, mask_url, without_secret
from tests.unit.cli.cli_support import cli, closed_port, lines

ROOT = Path(__file__).resolve().parents[3]


def _boom(*_: object, **__: object) -> None:
    raise ZeroDivisionError("the CLI has a bug")


def test_a_usage_error_is_one_line_naming_the_commands_help() -> None:
    result = cli("import", "publish", "x.csv", "--school", "s")
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        "error INVALID_ARGUMENT USAGE: Invalid value for 'FILE': file 'x.csv' does not exist "
        "(see rollcall import publish --help)"
    ]
    missing = cli("import", "status")
    assert missing.exit_code == 2
    assert lines(missing.stderr) == [
        "error INVALID_ARGUMENT USAGE: Missing argument 'JOB_ID' (see rollcall import status --help)"
    ]
    as_json = cli("import", "status", "--json")
    assert json.loads(as_json.stderr)["error"]["reason"] == "USAGE"


def test_an_unknown_command_is_one_line() -> None:
    result = cli("import", "publsh")
    assert result.exit_code == 2
    assert len(lines(result.stderr)) == 1 and "No such command 'publsh'" in result.stderr


def test_an_unexpected_exception_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "get_school", _boom)
    result = cli("school", "show", "s-1")
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        "error INTERNAL UNEXPECTED: ZeroDivisionError: the CLI has a bug "
        "(run with --debug or ROLLCALL_CLI_DEBUG=1 for the traceback)"
    ]
    assert "Traceback" not in result.output
    as_json = cli("school", "show", "s-1", "--json")
    assert as_json.exit_code == 2 and as_json.stdout == ""
    assert json.loads(as_json.stderr)["error"] == {
        "code": "INTERNAL",
        "reason": "UNEXPECTED",
        "message": "ZeroDivisionError: the CLI has a bug "
        "(run with --debug or ROLLCALL_CLI_DEBUG=1 for the traceback)",
        "exception": "ZeroDivisionError",
    }


@pytest.mark.parametrize(("args", "env"), [(["--debug"], {}), ([], {"ROLLCALL_CLI_DEBUG": "1"})])
def test_the_traceback_only_with_debug(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]
) -> None:
    monkeypatch.setattr(cli_main, "get_school", _boom)
    result = cli(*args, "school", "show", "s-1", env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: the CLI has a bug" in result.stderr
    assert lines(result.stderr)[-1] == "error INTERNAL UNEXPECTED: ZeroDivisionError: the CLI has a bug"


def test_main_guards_whatever_escapes_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_main, "app", _boom)
    monkeypatch.setattr(sys, "argv", ["rollcall", "import", "status", "j", "--json"])
    monkeypatch.delenv(failures.DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as stopped:
        cli_main.main()
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and json.loads(captured.err)["error"]["exception"] == "ZeroDivisionError"


def test_the_installed_command_in_a_real_process_prints_one_line(tmp_path: Path) -> None:
    """Broker down, a password in the URL: one line, the password masked, exit 1 — and the
    libraries' own warnings (aio-pika's "error when creating transport") stay off stderr."""
    roster = tmp_path / "students.csv"
    roster.write_text("username,email_address,first_name,last_name\nann,ann@uni.edu,Ann,Lee\n")
    port = closed_port()
    script = "import sys; from shared.cli.main import main; sys.argv[0] = 'rollcall'; main()"
    args = [sys.executable, "-c", script, "--amqp-url", f"amqp://sis:pa55@127.0.0.1:{port}/"]
    args += ["--identity", f"127.0.0.1:{closed_port()}", "school", "show", "s-1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLCALL_")}
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert len(lines(done.stderr)) == 1 and "SERVICE_UNREACHABLE" in done.stderr, done.stderr


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("amqp://sis:s3cret@mq.uni.edu:5671/vh") == "amqp://sis:***@mq.uni.edu:5671/vh"
    assert mask_url("amqp://mq.uni.edu/") == "amqp://mq.uni.edu/"
    assert mask_url("amqp://guest:guest@localhost:5672/") == "amqp://guest:***@localhost:5672/"
    assert without_secret("login s3cret refused", "amqp://sis:s3cret@h/") == "login *** refused"


def test_a_cli_error_is_one_line_whatever_the_message() -> None:
    error = CliError("NOT_FOUND", "X", "first\nsecond   third")
    assert error.line() == "error NOT_FOUND X: first second third"
    assert error.payload() == {"error": {"code": "NOT_FOUND", "reason": "X", "message": "first second third"}}


def _every_command() -> list[list[str]]:
    root = get_command(cli_main.app)
    paths: list[list[str]] = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        if subcommands:
            paths += [[name, sub] for sub in subcommands]
        else:
            paths.append([name])
    return paths


@pytest.mark.parametrize("path", _every_command(), ids=" ".join)
def test_help_fits_80_columns_and_every_option_has_a_help_text(path: list[str]) -> None:
    result = cli(*path, "--help", env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "<str>" not in text and "<bool>" not in text and "<int" not in text and "…" not in text, text
    options = [line.split() for line in text.split("Options:")[1].splitlines() if line.startswith("  -")]
    for words in options:
        assert len(words) > 1 or words[0] == "--help", f"{words[0]} has no help text:\n{text}"


def test_top_level_help_lists_every_connection_option_with_help() -> None:
    text = cli("--help", env={"COLUMNS": "80"}).stdout
    for option in ("--identity HOST:PORT", "--import-addr HOST:PORT", "--amqp-url URL", "--prefix PREFIX",
                   "--token TOKEN", "--actor USER_ID", "--otlp-endpoint URL", "--debug"):  # fmt: skip
        assert option in text, text
    assert "dev-admin-token" not in text  # the token's value is not shown
