"""Databases written under an older schema, for the migrations' tests."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from identity_service.adapters.postgres import MIGRATION_LOCK_KEY, MIGRATIONS
from tests.infra import migrated_database


@contextlib.asynccontextmanager
async def migrated_up_to(server_url: str, folder: Path, pattern: str) -> AsyncIterator[str]:
    """A fresh database migrated with only the identity migrations matching ``pattern`` (copied to
    ``folder``): the schema as it was before a later migration; dropped afterwards."""
    folder.mkdir()
    for path in sorted(MIGRATIONS.glob(pattern)):
        shutil.copy(path, folder / path.name)
    name = f"rcold_{uuid.uuid4().hex[:10]}"
    async with migrated_database(server_url, name, (folder, MIGRATION_LOCK_KEY)) as url:
        yield url
