"""authenticate, token, token/refresh: a session's principal, got and renewed over the socket."""

from __future__ import annotations

from typing import Any

from gateway.errors import Forbidden, TokenRevoked
from gateway.realtime.dispatcher import Context, action
from gateway.realtime.session import Session
from gateway.schema import Str
from gateway.types import Principal


async def admitted(ctx: Context, token: str) -> Principal:
    """The token's principal, with its client's memberships known here: the one step of
    authentication that may read PostgreSQL (a Bearer upgrade does it before the upgrade)."""
    principal = ctx.auth.authenticate(token)
    registry = ctx.registry
    if not principal.is_admin and registry.known_memberships(principal.user_id) is None:
        await registry.load_memberships(principal.user_id)
        # A revocation may have arrived while we waited; bind() below must not miss it.
        if ctx.view.is_revoked(principal):
            raise TokenRevoked()
    return principal


async def authenticate_session(
    ctx: Context, session: Session, token: str, principal: Principal | None = None
) -> Principal:
    """Bind the session to the token's principal (``principal``: already ``admitted``)."""
    if principal is None:
        principal = await admitted(ctx, token)
    elif ctx.view.is_revoked(principal):  # revoked while the upgrade was answered
        raise TokenRevoked()
    current = session.principal
    if current is not None and current.user_id != principal.user_id:
        raise Forbidden("This socket belongs to another user; open a new connection")
    ctx.hub.bind(session, principal)
    return principal


@action(
    "authenticate", {"token": Str(min_length=1, max_length=8192)}, ("token",), needs_token=False
)
async def authenticate(ctx: Context, session: Session, request: dict[str, Any]) -> None:
    await authenticate_session(ctx, session, request["token"])


@action(
    "token",
    {"login": Str(min_length=1, max_length=320), "password": Str(min_length=1, max_length=1024)},
    ("login", "password"),
    needs_token=False,
)
async def token(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    pair = await ctx.auth.login(request["login"], request["password"], session.remote or "ws")
    return {"accessToken": pair.access.token, "refreshToken": pair.refresh.token}


@action(
    "token/refresh",
    {"refreshToken": Str(min_length=1, max_length=8192)},
    ("refreshToken",),
    needs_token=False,
)
async def token_refresh(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    access = await ctx.auth.access_from_refresh(request["refreshToken"])
    current = session.principal
    if current is not None:
        fresh = ctx.auth.authenticate(access.token)
        if fresh.user_id == current.user_id:
            ctx.hub.bind(session, fresh)
    return {"accessToken": access.token}
