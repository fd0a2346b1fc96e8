"""GET /v1/openapi.json describes every route, with the same schemas that validate requests."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

import gateway
from gateway.api.routing import ROUTES
from tests.support.http import expect_json


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
            "message": {"type": "string", "maxLength": 1024},
            "request_id": {"type": "string", "maxLength": 1024},
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
        if route.body is not None:
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
            "email": {"type": "string", "minLength": 1, "maxLength": 320},
            "login": {"type": "string", "minLength": 1, "maxLength": 320},
            "username": {"type": "string", "minLength": 1, "maxLength": 320},
            "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        },
        "additionalProperties": False,
        "required": ["password"],
        "description": "One of email, login or username names the account.",
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
            "schema": {"type": "string", "maxLength": 1024, "pattern": r"\d{1,18}"},
        },
    ]
    mint = document["paths"]["/v1/auth/token/create"]["post"]
    mint_schema = mint["requestBody"]["content"]["application/json"]["schema"]
    device_items = mint_schema["properties"]["deviceIds"]["items"]
    assert {"type": "string", "enum": ["*"], "maxLength": 1024} in device_items["oneOf"]
