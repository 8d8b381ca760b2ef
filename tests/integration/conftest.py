"""What every integration folder that runs an identity service shares: ``campus`` (a fresh school
and its staff) made through that folder's own ``identity`` client fixture."""

from __future__ import annotations

import pytest

from tests.integration.identity.identity_support import Campus, IdentityClient


@pytest.fixture
async def campus(identity: IdentityClient) -> Campus:
    """A fresh school with one active staff member (``campus.staff_md`` acts as them)."""
    return await identity.new_campus()
