"""Fixtures of the realtime suite: the standard world on the default gateway."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.realtime.helpers import World, build_world


@pytest.fixture
async def world(client: TestClient[Any, Any]) -> World:
    return await build_world(client)
