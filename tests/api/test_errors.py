"""Every failure is a JSON ``{message, request_id}`` with the right status; never a 500."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AppFactory
from tests.support.http import expect_error, expect_json

JSON = {"Content-Type": "application/json"}


def decode_error(raw: bytes) -> str:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            return "JSON nests deeper than 64 levels"
        return f"Malformed JSON: {exc}"
    raise AssertionError(f"{raw!r} is valid JSON")


@pytest.mark.parametrize(
    "raw",
    [b"{bad", b'{"email": "a", }', b'{"email": "a"} trailing', b"[" * 2000, b"\xff\xfe", b"NaN"],
    ids=["unquoted-key", "trailing-comma", "trailing-data", "too-deep", "not-utf8", "nan"],
)
async def test_malformed_json_is_a_400(client: TestClient[Any, Any], raw: bytes) -> None:
    response = await client.post("/v1/auth/login", data=raw, headers=JSON)
    await expect_error(response, 400, decode_error(raw))


async def test_an_empty_body_is_a_400(client: TestClient[Any, Any]) -> None:
    for raw in (b"", b"  \n"):
        response = await client.post("/v1/auth/login", data=raw, headers=JSON)
        await expect_error(response, 400, "Request body is empty (expected a JSON object)")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None]
)
async def test_a_body_that_is_not_declared_json_is_a_415(
    client: TestClient[Any, Any], content_type: str | None
) -> None:
    body = orjson.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/v1/auth/login", data=body, headers=headers)
    await expect_error(response, 415, "Content-Type must be application/json")


async def test_json_with_a_charset_parameter_is_fine(client: TestClient[Any, Any]) -> None:
    body = orjson.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    response = await client.post(
        "/v1/auth/login",
        data=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert (await expect_json(response, 200))["token_type"] == "Bearer"


async def test_an_oversized_body_is_a_413(make_client: AppFactory) -> None:
    client = await make_client(max_body_bytes=1024)
    big = {"email": ADMIN_EMAIL, "password": "x" * 2000}
    await expect_error(
        await client.post("/v1/auth/login", json=big),
        413,
        "Request body must be at most 1024 bytes",
    )


async def test_an_oversized_chunked_body_without_length_is_a_413(make_client: AppFactory) -> None:
    client = await make_client(max_body_bytes=1024)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "a@example.com", "password": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'

    response = await client.post("/v1/auth/login", data=chunks(), headers=JSON)
    assert "Content-Length" not in response.request_info.headers
    await expect_error(response, 413, "Request body must be at most 1024 bytes")


async def test_a_body_just_under_the_limit_is_read(make_client: AppFactory) -> None:
    client = await make_client(max_body_bytes=1024)
    body = orjson.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "pad": ""})
    padded = body.replace(b'"pad":""', b'"pad":"' + b"x" * (1024 - len(body)) + b'"')
    assert len(padded) == 1024
    response = await client.post("/v1/auth/login", data=padded, headers=JSON)
    # Read in full and validated: the padding field is unknown, not too large.
    await expect_error(response, 422, "body: unknown field: pad")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"email": "a@example.com", "password": "p", "remember": True},
            "body: unknown field: remember",
        ),
        ({"email": "a@example.com", "password": "p", "z": 1, "a": 2}, "body: unknown field: a, z"),
        ({"email": "a@example.com"}, "body: missing field: password"),
        ({"email": 5, "password": "p"}, "email: must be a string"),
        ({"email": "a@example.com", "password": ["p"]}, "password: must be a string"),
        ({"email": None, "password": "p"}, "email: must not be null"),
        ({"email": "", "password": "p"}, "email: must not be empty"),
        ({"email": "a" * 321, "password": "p"}, "email: must be at most 320 characters"),
        ([], "body: must be a JSON object"),
        ("login", "body: must be a JSON object"),
        (None, "body: must not be null"),
    ],
    ids=[
        "unknown-field",
        "unknown-fields-sorted",
        "missing-field",
        "int-for-string",
        "list-for-string",
        "null",
        "empty",
        "too-long",
        "array-body",
        "string-body",
        "null-body",
    ],
)
async def test_invalid_bodies_are_422s_naming_the_field(
    client: TestClient[Any, Any], body: Any, message: str
) -> None:
    response = await client.post("/v1/auth/login", data=orjson.dumps(body), headers=JSON)
    await expect_error(response, 422, message)


async def test_unknown_query_parameters_are_a_400(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    response = await client.get("/v1/auth/me?debug=1", headers=admin_headers)
    await expect_error(response, 400, "unknown query parameter: debug")
    response = await client.get("/healthz?verbose=true")
    await expect_error(response, 400, "unknown query parameter: verbose")


async def test_an_unknown_route_is_a_json_404(client: TestClient[Any, Any]) -> None:
    for path in ("/v1/nothing", "/nothing", "/v1/users/1/secrets"):
        await expect_error(await client.get(path), 404, "Not found")


async def test_a_wrong_method_is_a_json_405_with_allow(client: TestClient[Any, Any]) -> None:
    response = await client.delete("/v1/auth/login")
    await expect_error(response, 405, "Method DELETE not allowed")
    assert response.headers["Allow"] == "POST"


async def test_authentication_is_checked_before_the_body(client: TestClient[Any, Any]) -> None:
    """An anonymous caller learns nothing about the body rules of a protected route."""
    response = await client.post("/v1/users", data=b"{bad", headers=JSON)
    await expect_error(
        response, 401, "Missing Authorization header (expected: Bearer <access token>)"
    )


async def test_a_valid_client_request_id_is_echoed(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/nothing", headers={"X-Request-ID": "trace-42.a:b_c"})
    assert await expect_error(response, 404, "Not found") == "trace-42.a:b_c"
    response = await client.get("/healthz", headers={"X-Request-ID": "trace-43"})
    assert response.headers["X-Request-ID"] == "trace-43"


@pytest.mark.parametrize("incoming", ["has space", "x" * 65, "semi;colon", "<script>"])
async def test_an_unsafe_client_request_id_is_replaced(
    client: TestClient[Any, Any], incoming: str
) -> None:
    response = await client.get("/v1/nothing", headers={"X-Request-ID": incoming})
    request_id = await expect_error(response, 404, "Not found")
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)


async def test_successes_carry_a_request_id_too(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    ids = set()
    for path in ("/healthz", "/v1/auth/me", "/v1/openapi.json"):
        response = await client.get(path, headers=admin_headers)
        assert response.status == 200
        ids.add(response.headers["X-Request-ID"])
    assert len(ids) == 3


BIG = 2**63  # one past PostgreSQL's bigint


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        (
            "POST",
            "/v1/auth/token/create",
            {"user_id": BIG},
            422,
            "user_id: must be a 64-bit integer",
        ),
        (
            "POST",
            "/v1/auth/token/create",
            {"user_id": 10**19},
            422,
            "user_id: must be a 64-bit integer",
        ),
        (
            "POST",
            "/v1/auth/token/create",
            {"networkIds": [BIG]},
            422,
            "networkIds[0]: must be a 64-bit integer",
        ),
        (
            "POST",
            "/v1/auth/token/create",
            {"expires_in": 2**64 - 1},
            422,
            "expires_in: must be a 64-bit integer",
        ),
        ("POST", "/v1/auth/revoke", {"user_id": BIG}, 422, "user_id: must be a 64-bit integer"),
        (
            "POST",
            "/v1/users",
            {
                "name": "n",
                "email": "a@b",
                "password": "password-1",
                "role": "client",
                "networkIds": [BIG],
            },
            422,
            "networkIds[0]: must be a 64-bit integer",
        ),
        (
            "PATCH",
            "/v1/users/1",
            {"networkIds": [BIG]},
            422,
            "networkIds[0]: must be a 64-bit integer",
        ),
        (
            "PUT",
            "/v1/devices/dev-1",
            {"name": "d", "networkId": BIG},
            422,
            "networkId: must be a 64-bit integer",
        ),
        ("GET", "/v1/users/999999999999999999", None, 404, "User not found"),
        (
            "PUT",
            "/v1/users/999999999999999999/networks/999999999999999999",
            None,
            404,
            "User not found",
        ),
    ],
)
async def test_out_of_range_numbers_are_422s_not_500s(
    client: TestClient[Any, Any],
    admin_headers: dict[str, str],
    method: str,
    path: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    response = await client.request(
        method,
        path,
        data=None if body is None else orjson.dumps(body),
        headers={**admin_headers, **JSON},
    )
    await expect_error(response, status, message)


async def test_the_largest_cursor_is_an_empty_last_page(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    response = await client.get("/v1/users?cursor=999999999999999999", headers=admin_headers)
    assert await expect_json(response, 200) == {"users": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        (
            "POST",
            "/v1/auth/login",
            {"email": "a\u0000b", "password": "x"},
            "email: must not contain NUL characters",
        ),
        (
            "POST",
            "/v1/users",
            {"name": "a\u0000", "email": "x@y", "password": "password-1", "role": "client"},
            "name: must not contain NUL characters",
        ),
        ("POST", "/v1/networks", {"name": "n\u0000"}, "name: must not contain NUL characters"),
        (
            "PUT",
            "/v1/devices/d1",
            {"name": "d", "networkId": 1, "data": {"deep": [{"k": "\u0000"}]}},
            "data: strings must not contain NUL characters",
        ),
        (
            "PUT",
            "/v1/devices/d1",
            {"name": "d", "networkId": 1, "data": {"k\u0000": 1}},
            "data: strings must not contain NUL characters",
        ),
        ("POST", "/v1/auth/revoke", {"jti": "\u0000"}, "jti: must not contain NUL characters"),
        (
            "POST",
            "/v1/auth/token/refresh",
            {"refresh_token": "\u0000"},
            "refresh_token: must not contain NUL characters",
        ),
    ],
)
async def test_nul_characters_are_422s_not_database_errors(
    client: TestClient[Any, Any],
    admin_headers: dict[str, str],
    method: str,
    path: str,
    body: Any,
    message: str,
) -> None:
    """PostgreSQL's text and jsonb cannot hold NUL; it must be refused before it gets there."""
    response = await client.request(
        method, path, data=orjson.dumps(body), headers={**admin_headers, **JSON}
    )
    await expect_error(response, 422, message)


async def test_an_escaped_backslash_u0000_is_ordinary_text(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    network = await expect_json(
        await client.post("/v1/networks", json={"name": "n"}, headers=admin_headers), 201
    )
    response = await client.put(
        "/v1/devices/d1",
        json={"name": "d", "networkId": network["id"], "data": {"raw": "\\u0000"}},
        headers=admin_headers,
    )
    device = await expect_json(response, 201)
    assert device["data"] == {"raw": "\\u0000"}
