from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import bearer


async def test_login_then_me(client: TestClient[Any, Any], admin: dict[str, Any]) -> None:
    response = await client.get("/v1/auth/me", headers=bearer(admin["access_token"]))
    assert response.status == 200
    body = await response.json()
    assert body["email"] == "admin@example.com"
    assert body["role"] == "admin"
    assert "password_hash" not in body
