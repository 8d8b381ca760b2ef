"""Spreadsheet formula injection guard for exported cells, and its exact inverse for uploads.

OWASP's CSV-injection advice: a cell starting with ``=``, ``+``, ``-``, ``@``, TAB or CR may be run as
a formula by a spreadsheet, so the export prefixes it with a single quote ``'``. For the exported file
to be re-uploaded unchanged, the CSV reader removes that quote again. The round-trip rule is exact:

- export (``guard_formula``): add one ``'`` when the value matches ``'*[=+\\-@\\t\\r]`` (any run of
  quotes, possibly none, then a trigger character);
- upload (``unguard_formula``): remove one ``'`` when the value matches ``'+[=+\\-@\\t\\r]``.

So every value survives export + upload, including values that themselves start with quotes. An
uploaded cell written by hand as ``'=SUM(A1)`` is read as ``=SUM(A1)``, which is what a spreadsheet
shows for it too.
"""

from __future__ import annotations

import re

_NEEDS_GUARD = re.compile(r"'*[=+\-@\t\r]")
_GUARDED = re.compile(r"'+[=+\-@\t\r]")


def guard_formula(value: str) -> str:
    """``value`` made safe to open in a spreadsheet (see the module's round-trip rule)."""
    return "'" + value if _NEEDS_GUARD.match(value) else value


def unguard_formula(value: str) -> str:
    """The value ``guard_formula`` was given, for a cell read from an upload."""
    return value[1:] if value.startswith("'") and _GUARDED.match(value) else value
