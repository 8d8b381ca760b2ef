"""A multi-host DSN (PostgreSQL failover, F8) survives the DSN handling of shared.pg and settings."""

from __future__ import annotations

from shared.pg import database_name, with_database
from shared.settings import load_settings

MULTI = "postgresql://rc@db1:5432,db2:5433/rollcall_identity?target_session_attrs=read-write"


def test_database_name_of_a_multi_host_dsn() -> None:
    assert database_name(MULTI) == "rollcall_identity"


def test_with_database_keeps_every_host_and_the_session_attrs() -> None:
    assert with_database(MULTI, "postgres") == (
        "postgresql://rc@db1:5432,db2:5433/postgres?target_session_attrs=read-write"
    )


def test_settings_accept_multi_host_dsns() -> None:
    imports = MULTI.replace("rollcall_identity", "rollcall_import")
    settings = load_settings(identity_database_url=MULTI, import_database_url=imports)
    assert (settings.identity_database_url, settings.import_database_url) == (MULTI, imports)
