"""GET /v1/openapi.json describes every route, with the same schemas that validate requests."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

import gateway
from gateway.api.routing import ROUTES
from gateway.schema import NO_NUL
from tests.conftest import AppFactory
from tests.support.http import expect_error, expect_json


async def fetch(client: TestClient[Any, Any]) -> dict[str, Any]:
    document: dict[str, Any] = await expect_json(await client.get("/v1/openapi.json"), 200)
    return document


async def test_it_is_an_openapi_3_1_document_served_without_auth(
    client: TestClient[Any, Any],
) -> None:
    document = await fetch(client)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "gateway"
    assert document["info"]["version"] == gateway.__version__
    assert document["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    assert document["components"]["schemas"]["Error"] == {
        "type": "object",
        "properties": {
            "message": {"type": "string", "pattern": NO_NUL},
            "request_id": {"type": "string", "maxLength": 64, "pattern": NO_NUL},
        },
        "additionalProperties": False,
        "required": ["message", "request_id"],
    }


async def test_every_route_is_described_and_nothing_else(client: TestClient[Any, Any]) -> None:
    document = await fetch(client)
    declared = {(route.path, route.method.lower()) for route in ROUTES.routes}
    described = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert described == declared
    assert ("/v1/auth/login", "post") in described
    assert ("/v1/users/{id}", "patch") in described
    operation_ids = [
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))


async def test_each_operation_documents_its_body_auth_and_errors(
    client: TestClient[Any, Any],
) -> None:
    document = await fetch(client)
    for route in ROUTES.routes:
        operation = document["paths"][route.path][route.method.lower()]
        codes = set(operation["responses"])
        assert codes, route.path
        assert all(code.isdigit() for code in codes)
        assert "400" in codes, route.path  # an unknown query parameter, on every route
        if route.body is not None or route.params or route.query:
            assert "422" in codes, route.path
        if route.body is not None:
            if route.path != "/v1/auth/token/create":  # its expires_in maximum is configured
                assert operation["requestBody"] == {
                    "required": True,
                    "content": {"application/json": {"schema": route.body.json_schema()}},
                }
            assert {"400", "413", "415", "422"} <= codes, route.path
        else:
            assert "requestBody" not in operation
        if route.auth:
            assert operation["security"] == [{"bearer": []}]
            assert "401" in codes
        else:
            assert "security" not in operation
        if route.permission is not None:
            assert "403" in codes
            assert operation["description"] == f"Needs the {route.permission.name} action."
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }
        path_params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
        assert {p["name"] for p in path_params} == set(route.params)
        assert all(p["required"] for p in path_params)


async def test_request_bodies_are_strict_like_the_validation(
    client: TestClient[Any, Any],
) -> None:
    document = await fetch(client)
    login = document["paths"]["/v1/auth/login"]["post"]
    schema = login["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {
        "type": "object",
        "properties": {
            "email": {"type": "string", "minLength": 1, "maxLength": 320, "pattern": NO_NUL},
            "login": {"type": "string", "minLength": 1, "maxLength": 320, "pattern": NO_NUL},
            "username": {"type": "string", "minLength": 1, "maxLength": 320, "pattern": NO_NUL},
            "password": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": NO_NUL},
        },
        "additionalProperties": False,
        "required": ["password"],
        "oneOf": [{"required": ["email"]}, {"required": ["login"]}, {"required": ["username"]}],
        "description": "Exactly one of email, login or username names the account.",
    }
    pair = login["responses"]["200"]["content"]["application/json"]["schema"]
    assert pair["required"] == [
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "issued_at",
        "expires_at",
        "user_id",
    ]
    assert set(login["responses"]) == {"200", "400", "401", "403", "413", "415", "422", "429"}

    users = document["paths"]["/v1/users"]["get"]
    assert users["parameters"] == [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 1000},
        },
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "schema": {
                "type": "string",
                "maxLength": 1024,
                "pattern": r"^(?=[^\u0000]*$)(?:\d{1,18})$",
            },
        },
    ]
    mint = document["paths"]["/v1/auth/token/create"]["post"]
    mint_schema = mint["requestBody"]["content"]["application/json"]["schema"]
    assert mint_schema["properties"]["deviceIds"]["oneOf"][0] == {
        "type": "array",
        "items": {"const": "*"},
        "minItems": 1,
        "maxItems": 1,
    }


async def test_configured_maxima_and_exactly_one_rules_are_in_the_document(
    make_client: AppFactory,
) -> None:
    client = await make_client(mint_max_ttl=3600)
    document = await fetch(client)
    mint = document["paths"]["/v1/auth/token/create"]["post"]
    expires_in = mint["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "expires_in"
    ]
    assert expires_in == {
        "type": "integer",
        "format": "int64",
        "minimum": 1,
        "maximum": 3600,
        "description": "access token lifetime, seconds",
    }
    revoke = document["paths"]["/v1/auth/revoke"]["post"]
    assert revoke["requestBody"]["content"]["application/json"]["schema"]["oneOf"] == [
        {"required": ["jti"]},
        {"required": ["user_id"]},
        {"required": ["device_id"]},
    ]
    user_id = document["paths"]["/v1/users/{id}"]["get"]["parameters"][0]["schema"]
    assert user_id == {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}


async def test_any_int64_path_id_is_read_as_one(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    """19 digits are an int64 like any other: 404 for a user that does not exist; beyond
    int64, 422."""
    response = await client.get("/v1/users/9223372036854775806", headers=admin_headers)
    await expect_error(response, 404, "User not found")
    response = await client.get("/v1/users/9223372036854775808", headers=admin_headers)
    await expect_error(response, 422, "id: must be a 64-bit integer")


def _resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _json_schema(document: dict[str, Any], part: dict[str, Any]) -> dict[str, Any] | None:
    schema = part.get("content", {}).get("application/json", {}).get("schema")
    return None if schema is None else _resolved(document, schema)


async def test_a_response_holds_whatever_its_request_may_set(
    client: TestClient[Any, Any],
) -> None:
    """A field a request sets and its response echoes admits in the response every length the
    request does: a device type's description of 2,000 characters was accepted, then broke its
    own response schema (1,024), as the long fuzz run found."""
    document = await fetch(client)
    narrower = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = _json_schema(document, operation.get("requestBody", {}))
            if body is None:
                continue
            for status, response in operation["responses"].items():
                echoed = _json_schema(document, response) if status.startswith("2") else None
                for name, field in body.get("properties", {}).items():
                    held = (echoed or {}).get("properties", {}).get(name)
                    if held is None:
                        continue
                    wanted = _resolved(document, field).get("maxLength")
                    bound = _resolved(document, held).get("maxLength")
                    if bound is not None and (wanted is None or wanted > bound):
                        narrower.append(
                            f"{method.upper()} {path} {status} {name}: {wanted}>{bound}"
                        )
    assert narrower == []
