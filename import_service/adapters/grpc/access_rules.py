"""Which roles may call which ImportService RPC (the interceptor enforces it before the handler).

The per-school rule (a platform call needs an actor who is ACTIVE STAFF of the job's school) is
``service.access.SchoolAccess``. The importer role may read; only admin and staff act.
"""

from __future__ import annotations

from shared.settings import Role

SERVICE = "rollcall.importer.v1.ImportService"
_READERS = frozenset({Role.ADMIN, Role.PLATFORM, Role.IMPORTER})
_ACTORS = frozenset({Role.ADMIN, Role.PLATFORM})

RULES: dict[str, frozenset[Role]] = {
    f"/{SERVICE}/SubmitFile": _ACTORS,
    f"/{SERVICE}/GetImportJob": _READERS,
    f"/{SERVICE}/ListImportJobs": _READERS,
    f"/{SERVICE}/WatchImportJob": _READERS,
    f"/{SERVICE}/ListRowResults": _READERS,
    f"/{SERVICE}/ExportFailedRows": _READERS,
    f"/{SERVICE}/RetryFailedRows": _ACTORS,
    f"/{SERVICE}/ReleaseImportJob": _ACTORS,
    f"/{SERVICE}/DiscardImportJob": _ACTORS,
    f"/{SERVICE}/UndoImportJob": _ACTORS,
    f"/{SERVICE}/ListJobArchives": _READERS,
}
