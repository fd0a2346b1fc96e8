"""Assertions on the gateway's HTTP answers, shared by the REST and auth tests."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.conftest import bearer

# The fields of every token-pair response (login, refresh, token/create).
PAIR_KEYS = {
    "access_token",
    "refresh_token",
    "token_type",
    "expires_in",
    "issued_at",
    "expires_at",
    "user_id",
}


async def expect_error(response: ClientResponse, status: int, message: str) -> str:
    """The exact error body ``{message, request_id}``, whose id is the X-Request-ID header.

    Returns the request id."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json", response.content_type
    body = await response.json()
    request_id = response.headers["X-Request-ID"]
    assert request_id
    assert body == {"message": message, "request_id": request_id}, body
    return request_id


async def expect_json(response: ClientResponse, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json", response.content_type
    assert response.headers["X-Request-ID"]
    return await response.json()


async def expect_empty(response: ClientResponse, status: int = 204) -> None:
    text = await response.text()
    assert response.status == status, text
    assert text == ""
    assert response.headers["X-Request-ID"]


async def token_info(client: TestClient[Any, Any], token: str) -> dict[str, Any]:
    """``{header, payload}`` of a token, as the gateway decodes it."""
    response = await client.get("/v1/auth/tokenInfo", headers=bearer(token))
    info: dict[str, Any] = await expect_json(response, 200)
    return info


async def me_status(client: TestClient[Any, Any], token: str) -> int:
    response = await client.get("/v1/auth/me", headers=bearer(token))
    await response.read()
    return response.status


async def create_network(client: TestClient[Any, Any], headers: dict[str, str], name: str) -> int:
    response = await client.post("/v1/networks", json={"name": name}, headers=headers)
    body = await expect_json(response, 201)
    network_id: int = body["id"]
    return network_id


async def create_device(
    client: TestClient[Any, Any], headers: dict[str, str], device_id: str, network_id: int
) -> None:
    response = await client.put(
        f"/v1/devices/{device_id}",
        json={"name": device_id, "networkId": network_id},
        headers=headers,
    )
    await expect_json(response, 201)
