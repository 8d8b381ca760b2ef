"""README's Configuration table against the code: every ``shared.settings.Settings`` field is a row
with its environment name and default, every variable the services read themselves
(``os.environ.get("ROLLCALL_…", default)``) too, and every variable of the table exists.

How the table is read: a row's first cell names one or more variables in backticks, separated by
``/``; a name starting with ``_`` replaces the last word of the row's first name (``ROLLCALL_SMTP_HOST``
/ ``_PORT`` is ``ROLLCALL_SMTP_PORT``). The second cell gives one default for all of them or one per
name, separated by `` / ``; text in parentheses explains it, ``none`` or a dash means unset (``None``,
``""`` or an empty list).
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import pytest

from import_service.adapters.amqp.prefetch import MIN_PREFETCH, ROWS_IN_FLIGHT, START_PREFETCH
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# what the services run: the settings' users, not the CLI (its variables are in README's CLI section)
SERVICE_SOURCES = ("shared", "identity_service", "import_service")
NOT_SERVICES = ("shared/cli/", "shared/proto/", "shared/devstack.py")
DIRECT_READ = re.compile(
    r"""os\.(?:environ\.get|getenv)\(\s*["'](ROLLCALL_\w+)["']\s*(?:,\s*["']([^"']*)["'])?"""
)
UNSET = ("none", "\N{EN DASH}", "-")


def configuration_rows() -> dict[str, tuple[str, str]]:
    """Each documented variable → (its documented default, the row's meaning)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `ROLLCALL_"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3, f"a row of three cells: {line}"
        names_cell, defaults_cell, meaning = cells
        written = re.findall(r"`([A-Z0-9_]+)`", names_cell)
        first = written[0]
        names = [first] + [
            name if name.startswith("ROLLCALL_") else first.rsplit("_", 1)[0] + name for name in written[1:]
        ]
        defaults = [d.strip() for d in defaults_cell.split(" / ")]
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(defaults) == len(names), f"one default, or one per variable: {line}"
        for name, default in zip(names, defaults, strict=True):
            assert name not in rows, f"{name} documented twice"
            rows[name] = (default, meaning)
    return rows


def direct_reads() -> dict[str, str | None]:
    """Variables the services' code reads from the environment itself → the default it uses."""
    found: dict[str, str | None] = {}
    for folder in SERVICE_SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(NOT_SERVICES):
                continue
            for name, default in DIRECT_READ.findall(path.read_text()):
                found[name] = default or None
    return found


def settings_defaults() -> dict[str, object]:
    defaults: dict[str, object] = {}
    for field, info in Settings.model_fields.items():
        value = info.get_default(call_default_factory=True)
        defaults[f"ROLLCALL_{field.upper()}"] = value
    return defaults


def matches(documented: str, value: object) -> bool:
    """Whether the README's default cell says the code's default."""
    shown = re.sub(r"\s*\(.*\)$", "", documented).strip("`").strip()
    if shown.lower() in UNSET:
        return value in (None, "", [])
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return shown.lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(shown.replace(",", "")) == float(value)
        except ValueError:
            return False
    return shown == str(value)


def test_the_table_is_read() -> None:
    rows = configuration_rows()
    assert rows["ROLLCALL_SMTP_PASSWORD"][0] == "\N{EN DASH}"
    assert rows["ROLLCALL_TLS_CLIENT_CA"][0] == "none"
    assert rows["ROLLCALL_IMPORT_RELAY_HEALTH_PORT"][0] == "50054"
    assert len(rows) >= 40
    assert matches("0 (= CPUs, at most 4)", 0) and matches("`dev`", "dev") and not matches("24", 25.0)
    assert "ROLLCALL_EVENT_LOOP" in direct_reads()


def test_every_setting_is_documented_with_its_name_and_default() -> None:
    rows = configuration_rows()
    expected = {**settings_defaults(), **direct_reads()}
    missing = sorted(set(expected) - set(rows))
    assert missing == [], f"README's Configuration table lacks {missing}"
    wrong = {
        name: (rows[name][0], value) for name, value in expected.items() if not matches(rows[name][0], value)
    }
    assert wrong == {}, "documented default vs the code's: " + repr(wrong)


def test_every_documented_variable_exists() -> None:
    known = set(settings_defaults()) | set(direct_reads())
    unknown = sorted(set(configuration_rows()) - known)
    assert unknown == [], f"README documents variables nothing reads: {unknown}"


@pytest.mark.parametrize("name", ["ROLLCALL_IMPORT_PREFETCH"])
def test_the_prefetch_row_says_it_is_sized_by_rows(name: str) -> None:
    meaning = configuration_rows()[name][1]
    for number in (ROWS_IN_FLIGHT, MIN_PREFETCH, START_PREFETCH):
        assert f"{number:,}" in meaning, f"{name}: {number} of import_service/adapters/amqp/prefetch.py"
    assert "rows" in meaning and "messages" in meaning
