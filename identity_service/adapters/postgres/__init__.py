"""All SQL of the identity service: migrations, repositories and the unit of work."""

from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 7_001
