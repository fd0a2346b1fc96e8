"""Fixtures of the repository tests: a pool on this test's freshly truncated database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.store.db import Pool, create_pool


@pytest.fixture
async def pool(clean_db: str) -> AsyncIterator[Pool]:
    pool = await create_pool(clean_db, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
