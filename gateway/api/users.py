"""REST: user management. User objects never carry a password hash."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.routing import ROUTES, Call, receipt_headers
from gateway.errors import Forbidden, NotFound
from gateway.http import client_address, json_response
from gateway.schema import Array, Int, Obj, Str
from gateway.types import Action, User

EMAIL = Str(
    min_length=3,
    max_length=320,
    pattern=r"[^@\s]+@[^@\s]+",
    visible=True,
    description="an e-mail address: one @, no white space, control or invisible character "
    "(not checked further)",
)
PASSWORD = Str(min_length=8, max_length=1024, description="at least 8 characters")
NAME = Str(min_length=1, max_length=200)
ROLE = Str(enum=["admin", "client"])
STATUS = Str(enum=["active", "disabled"])
NETWORK_IDS = Array(Int(minimum=1), max_items=1000, description="the user's network memberships")
USER_ID = {"id": Int(minimum=1)}

USER = Obj(
    {
        "id": Int(),
        "name": Str(max_length=200),
        "email": Str(max_length=320),
        "role": ROLE,
        "status": STATUS,
        "networkIds": Array(Int()),
        "created_at": Str(format="date-time"),
        "updated_at": Str(format="date-time"),
    },
    required=["id", "name", "email", "role", "status", "networkIds", "created_at", "updated_at"],
)

USER_PAGE = Obj(
    {"users": Array(USER), "next_cursor": Str(nullable=True)}, required=["users", "next_cursor"]
)

NEW_USER = Obj(
    {"name": NAME, "email": EMAIL, "password": PASSWORD, "role": ROLE, "networkIds": NETWORK_IDS},
    required=["name", "email", "password", "role"],
)

USER_CHANGES = Obj(
    {
        "name": NAME,
        "password": PASSWORD,
        "current_password": Str(min_length=1, max_length=1024),
        "role": ROLE,
        "status": STATUS,
        "networkIds": NETWORK_IDS,
    },
    description="Any subset; without ManageUser only one's own name and password. Changing "
    "one's own password takes the current one too (current_password).",
)


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "status": user.status,
        "networkIds": list(user.network_ids),
        "created_at": user.created_at.isoformat(),
        "updated_at": user.updated_at.isoformat(),
    }


def _self_or_manager(call: Call, user_id: int, own_action: Action) -> None:
    principal = call.principal
    if principal.may(Action.ManageUser):
        return
    if principal.user_id != user_id:
        raise Forbidden("Missing permission: ManageUser")
    if not principal.may(own_action):
        raise Forbidden(f"Missing permission: {own_action.name}")


@ROUTES.route(
    "POST",
    "/v1/users",
    summary="Create a user",
    tag="users",
    body=NEW_USER,
    permission=Action.ManageUser,
    responses={201: USER, 409: None, 422: None},
)
async def create_user(call: Call) -> web.Response:
    body = call.body
    user = await call.ctx.accounts.create(
        name=body["name"],
        email=body["email"],
        password=body["password"],
        role=body["role"],
        network_ids=body.get("networkIds", ()),
    )
    return json_response(user_json(user), status=201)


@ROUTES.route(
    "GET",
    "/v1/users",
    summary="List users, oldest first; pass next_cursor back as cursor for the next page",
    tag="users",
    query={"limit": Int(minimum=1, maximum=1000), "cursor": Str(pattern=r"\d{1,18}")},
    permission=Action.ManageUser,
    responses={200: USER_PAGE},
)
async def list_users(call: Call) -> web.Response:
    limit = call.query.get("limit", 100)
    after = int(call.query.get("cursor", "0"))
    users = await call.ctx.users.page(limit + 1, after)
    more = len(users) > limit
    users = users[:limit]
    return json_response(
        {
            "users": [user_json(user) for user in users],
            "next_cursor": str(users[-1].id) if more and users else None,
        }
    )


@ROUTES.route(
    "GET",
    "/v1/users/{id}",
    summary="One user (ManageUser, or GetCurrentUser for oneself)",
    tag="users",
    params=USER_ID,
    responses={200: USER, 403: None, 404: None},
)
async def get_user(call: Call) -> web.Response:
    _self_or_manager(call, call.params["id"], Action.GetCurrentUser)
    user = await call.ctx.users.get(call.params["id"])
    if user is None:
        raise NotFound("User not found")
    return json_response(user_json(user))


@ROUTES.route(
    "PATCH",
    "/v1/users/{id}",
    summary="Change a user; a new password, role or a disable revokes all of their tokens "
    "(never the last active administrator's role or status: 409)",
    tag="users",
    params=USER_ID,
    body=USER_CHANGES,
    responses={200: USER, 403: None, 404: None, 409: None, 422: None, 429: None},
)
async def update_user(call: Call) -> web.Response:
    user_id = call.params["id"]
    body = call.body
    _self_or_manager(call, user_id, Action.UpdateCurrentUser)
    if not call.principal.may(Action.ManageUser):
        beyond = sorted(set(body) - {"name", "password", "current_password"})
        if beyond:
            raise Forbidden(f"Changing {', '.join(beyond)} needs ManageUser")
    if "password" in body and user_id == call.principal.user_id:
        await call.ctx.accounts.confirm_password(
            user_id,
            body.get("current_password"),
            client_address(call.request, call.ctx.settings.trusted_proxies),
        )
    user, receipt = await call.ctx.accounts.update(
        user_id,
        name=body.get("name"),
        password=body.get("password"),
        role=body.get("role"),
        status=body.get("status"),
        network_ids=body.get("networkIds"),
    )
    return json_response(user_json(user), headers=receipt_headers(receipt))


@ROUTES.route(
    "DELETE",
    "/v1/users/{id}",
    summary="Delete a user and revoke all of their tokens",
    tag="users",
    params=USER_ID,
    permission=Action.ManageUser,
    responses={204: None, 404: None, 409: None},
)
async def delete_user(call: Call) -> web.Response:
    receipt = await call.ctx.accounts.delete(call.params["id"])
    return web.Response(status=204, headers=receipt_headers(receipt))
