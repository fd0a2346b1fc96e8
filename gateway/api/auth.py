"""REST: login, logout, refresh, token minting and inspection, revocation, JWKS."""

from __future__ import annotations

from typing import Any

import jwt
from aiohttp import web

from gateway.api.routing import ROUTES, Call, bearer_token, receipt_headers
from gateway.api.users import USER, user_json
from gateway.auth.minting import MintRequest
from gateway.auth.permissions import ROLES, parse_actions
from gateway.auth.tokens import ACCESS
from gateway.errors import Forbidden, NotFound
from gateway.http import client_address, json_response
from gateway.schema import DEVICE_ID, AllOr, Array, Int, Obj, OneOf, Str
from gateway.types import WILDCARD, Action, RevocationReason

LOGIN = Obj(
    {
        "email": Str(min_length=1, max_length=320),
        "login": Str(min_length=1, max_length=320),
        "username": Str(min_length=1, max_length=320),
        "password": Str(min_length=1, max_length=1024),
    },
    required=["password"],
    description="Exactly one of email, login or username names the account.",
    exactly_one=("email", "login", "username"),
)

TOKEN = Str(
    max_length=8192,
    description="a token carries its scope (networks, devices, a plugin's topic), so it may be "
    "long; none is issued longer than fits in an Authorization header",
)

TOKEN_PAIR = Obj(
    {
        "access_token": TOKEN,
        "refresh_token": TOKEN,
        "token_type": Str(enum=["Bearer"]),
        "expires_in": Int(description="seconds until the access token expires"),
        "issued_at": Str(format="date-time"),
        "expires_at": Str(format="date-time"),
        "user_id": Int(),
    },
    required=[
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "issued_at",
        "expires_at",
        "user_id",
    ],
)

REFRESH = Obj({"refresh_token": Str(min_length=1, max_length=8192)}, required=["refresh_token"])

ACTION_REF = OneOf([Str(enum=[a.name for a in Action]), Int(minimum=2, maximum=18)])

MINT = Obj(
    {
        "user_id": Int(minimum=1),
        "actions": Array(ACTION_REF, max_items=64, description="names or ids"),
        "networkIds": AllOr(
            Array(Int(minimum=1), max_items=1000),
            description='network ids, or ["*"] for all the owner may see',
        ),
        "deviceIds": AllOr(
            Array(DEVICE_ID, max_items=1000),
            description='device ids, or ["*"] for all the owner may see',
        ),
        "expires_in": Int(minimum=1, description="access token lifetime, seconds"),
    }
)

RECEIPT = Obj(
    {
        "sessions_closed": Int(),
        "instances": Array(
            Obj(
                {"instance": Str(), "sessions_closed": Int()},
                required=["instance", "sessions_closed"],
            )
        ),
    },
    required=["sessions_closed", "instances"],
)

REVOKE = Obj(
    {
        "jti": Str(min_length=1, max_length=64),
        "user_id": Int(minimum=1),
        "device_id": DEVICE_ID,
    },
    description="Exactly one of jti, user_id, device_id.",
    exactly_one=("jti", "user_id", "device_id"),
)

TOKEN_INFO = Obj({"header": Obj({}, additional=True), "payload": Obj({}, additional=True)})


def _wildcard_or(values: list[Any] | None, kind: str) -> frozenset[Any] | None:
    """None for all (``["*"]``, checked by AllOr), else the listed ids."""
    if values is None or values == [WILDCARD]:
        return None
    return frozenset(values)


@ROUTES.route(
    "POST",
    "/v1/auth/login",
    summary="Log in with email (or login/username) and password",
    tag="auth",
    body=LOGIN,
    auth=False,
    responses={200: TOKEN_PAIR, 401: None, 403: None, 429: None},
)
async def login(call: Call) -> web.Response:
    names = [call.body[key] for key in ("email", "login", "username") if key in call.body]
    address = client_address(call.request, call.ctx.settings.trusted_proxies)
    pair = await call.ctx.auth.login(names[0], call.body["password"], address)
    return json_response(pair.to_json())


@ROUTES.route(
    "POST",
    "/v1/auth/logout",
    summary="Revoke the presented access token and its refresh family",
    tag="auth",
    responses={204: None, 401: None},
)
async def logout(call: Call) -> web.Response:
    receipt = await call.ctx.auth.logout(call.principal)
    return web.Response(status=204, headers=receipt_headers(receipt))


@ROUTES.route(
    "POST",
    "/v1/auth/logout/all",
    summary="Revoke every token the user holds, on every device and session (needs a token "
    "with every right of its user: a narrowed one ends only its own family, with logout)",
    tag="auth",
    responses={204: None, 401: None, 403: None},
)
async def logout_all(call: Call) -> web.Response:
    principal = call.principal
    narrowed = (
        principal.actions != ROLES[principal.role]
        or principal.scope.network_ids is not None
        or principal.scope.device_ids is not None
    )
    if narrowed:
        # A token minted narrow (a device's, a plugin's) must not end every session of the
        # user who minted it.
        raise Forbidden(
            "logout/all needs a token with every right of its user; "
            "a narrowed token ends its own family with /v1/auth/logout"
        )
    receipt = await call.ctx.auth.revoke_user(
        call.principal.user_id, RevocationReason.LOGOUT_EVERYWHERE
    )
    return web.Response(status=204, headers=receipt_headers(receipt))


@ROUTES.route(
    "POST",
    "/v1/auth/token/refresh",
    summary="Rotate a refresh token: new access and refresh tokens; the old one is consumed",
    tag="auth",
    body=REFRESH,
    auth=False,
    responses={200: TOKEN_PAIR, 401: None},
)
async def refresh(call: Call) -> web.Response:
    pair = await call.ctx.auth.refresh(call.body["refresh_token"])
    return json_response(pair.to_json())


@ROUTES.route(
    "POST",
    "/v1/auth/token/create",
    summary="Mint tokens with a narrower scope (never beyond the caller's or the user's rights)",
    tag="auth",
    body=MINT,
    permission=Action.ManageToken,
    responses={201: TOKEN_PAIR, 403: None, 404: None},
)
async def create_token(call: Call) -> web.Response:
    body = call.body
    request = MintRequest(
        user_id=body.get("user_id"),
        actions=parse_actions(body["actions"]) if "actions" in body else None,
        network_ids=_wildcard_or(body.get("networkIds"), "networkIds"),
        device_ids=_wildcard_or(body.get("deviceIds"), "deviceIds"),
        expires_in=body.get("expires_in"),
    )
    pair = await call.ctx.auth.mint(call.principal, request)
    return json_response(pair.to_json(), status=201)


@ROUTES.route(
    "GET",
    "/v1/auth/tokenInfo",
    summary="The decoded header and payload of the presented token",
    tag="auth",
    responses={200: TOKEN_INFO, 401: None},
)
async def token_info(call: Call) -> web.Response:
    token = bearer_token(call.request)
    return json_response(
        {
            "header": jwt.get_unverified_header(token),
            "payload": call.ctx.auth.codec.decode(token, ACCESS),
        }
    )


@ROUTES.route(
    "GET",
    "/v1/auth/me",
    summary="The current user",
    tag="auth",
    permission=Action.GetCurrentUser,
    responses={200: USER, 401: None, 404: None},
)
async def me(call: Call) -> web.Response:
    user = await call.ctx.users.get(call.principal.user_id)
    if user is None:
        raise NotFound("User not found")
    return json_response(user_json(user))


@ROUTES.route(
    "POST",
    "/v1/auth/revoke",
    summary="Revoke a token (jti), every token of a user, or every token scoped to a device",
    tag="auth",
    body=REVOKE,
    permission=Action.ManageUser,
    responses={200: RECEIPT, 404: None},
)
async def revoke(call: Call) -> web.Response:
    auth = call.ctx.auth
    if "jti" in call.body:
        receipt = await auth.revoke_token(call.body["jti"], RevocationReason.BY_ADMINISTRATOR)
    elif "user_id" in call.body:
        if await call.ctx.users.get(call.body["user_id"]) is None:
            raise NotFound("User not found")
        receipt = await auth.revoke_user(call.body["user_id"], RevocationReason.BY_ADMINISTRATOR)
    else:
        receipt = await auth.revoke_device(
            call.body["device_id"], RevocationReason.BY_ADMINISTRATOR
        )
    return json_response(receipt.to_json())


@ROUTES.route(
    "GET",
    "/.well-known/jwks.json",
    summary="The public signing keys (empty for HS256)",
    tag="auth",
    auth=False,
    responses={200: Obj({"keys": Array(Obj({}, additional=True))})},
)
async def jwks(call: Call) -> web.Response:
    return json_response(call.ctx.keys.jwks())
