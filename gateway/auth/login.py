"""The token lifecycle: login, refresh, logout, minting, the per-request token check, revoking."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.auth.passwords import Passwords
from gateway.auth.permissions import ROLES
from gateway.auth.revocation import RevocationView
from gateway.auth.revoker import Receipt, Revoker
from gateway.auth.throttle import LoginThrottle
from gateway.auth.tokens import ACCESS, REFRESH, IssuedToken, TokenCodec, principal_from_claims
from gateway.errors import (
    Forbidden,
    NotFound,
    TokenRevoked,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from gateway.store.devices import DeviceStore
from gateway.store.sessions import Consumed, SessionStore
from gateway.store.users import UserStore
from gateway.types import (
    Action,
    Principal,
    Revocation,
    RevocationKind,
    RevocationReason,
    Scope,
    User,
    reasons_text,
)

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid email or password"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: IssuedToken
    refresh: IssuedToken
    user_id: int
    access_ttl: float

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access.token,
            "refresh_token": self.refresh.token,
            "token_type": "Bearer",
            "expires_in": self.access.expires_at - int(self.access.issued_at),
            "issued_at": _iso(self.access.issued_at),
            "expires_at": _iso(self.access.expires_at),
            "user_id": self.user_id,
        }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


@dataclass(frozen=True, slots=True)
class MintRequest:
    user_id: int | None = None
    actions: frozenset[Action] | None = None
    network_ids: frozenset[int] | None = None
    device_ids: frozenset[str] | None = None
    expires_in: float | None = None


def _names(actions: Iterable[Action]) -> str:
    return ", ".join(sorted(action.name for action in actions))


class AuthService:
    def __init__(
        self,
        *,
        users: UserStore,
        sessions: SessionStore,
        devices: DeviceStore,
        codec: TokenCodec,
        passwords: Passwords,
        throttle: LoginThrottle,
        view: RevocationView,
        revoker: Revoker,
        access_ttl: float,
        refresh_ttl: float,
    ) -> None:
        self.users = users
        self.sessions = sessions
        self.devices = devices
        self.codec = codec
        self.passwords = passwords
        self.throttle = throttle
        self.view = view
        self.revoker = revoker
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    # -- checking tokens -------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid, unrevoked access token: no database round-trip."""
        principal = self.codec.principal(token, ACCESS)
        if self.view.is_revoked(principal):
            raise TokenRevoked()
        return principal

    # -- issuing ---------------------------------------------------------------------------

    def _issue(
        self,
        typ: str,
        user: User,
        sid: str,
        actions: frozenset[Action],
        scope: Scope,
        ttl: float,
    ) -> IssuedToken:
        return self.codec.issue(
            typ=typ, user_id=user.id, role=user.role, sid=sid, actions=actions, scope=scope, ttl=ttl
        )

    async def _issue_pair(
        self,
        user: User,
        actions: frozenset[Action],
        scope: Scope,
        *,
        sid: str | None = None,
        access_ttl: float | None = None,
    ) -> TokenPair:
        if sid is None:
            sid = str(uuid.uuid4())
            await self.sessions.open(sid, user.id)
        ttl = access_ttl or self.access_ttl
        access = self._issue(ACCESS, user, sid, actions, scope, ttl)
        refresh = self._issue(REFRESH, user, sid, actions, scope, self.refresh_ttl)
        await self.sessions.add_refresh(refresh.jti, sid, refresh.expires_at)
        return TokenPair(access=access, refresh=refresh, user_id=user.id, access_ttl=ttl)

    async def login(self, name: str, password: str, address: str) -> TokenPair:
        account = name.strip().lower()
        wait = await self.throttle.admit(account, address)
        if wait is not None:
            raise TooManyRequests("Too many failed logins; try again later", wait)
        try:
            user = await self.users.by_email(account)
            matched = await self.passwords.verify(user.password_hash if user else None, password)
            if not matched or user is None:
                self.throttle.failed(account, address)
        finally:
            self.throttle.release(account)
        if not matched or user is None:
            raise Unauthorized(INVALID_CREDENTIALS)
        if not user.active:
            raise Forbidden("User account is disabled")
        self.throttle.succeeded(account)
        return await self._issue_pair(user, ROLES[user.role], Scope())

    async def _user_of_refresh(self, token: str) -> tuple[User, Principal]:
        principal = principal_from_claims(self.codec.decode(token, REFRESH))
        if self.view.is_revoked(principal):
            raise TokenRevoked()
        user = await self.users.get(principal.user_id)
        if user is None or not user.active:
            raise TokenRevoked()
        return user, principal

    async def _current_rights(
        self, user: User, principal: Principal
    ) -> tuple[frozenset[Action], Scope]:
        """The token's rights intersected with what the user may do now."""
        actions = principal.actions & ROLES[user.role]
        scope = principal.scope
        if user.role != "admin" and scope.network_ids is not None:
            scope = scope.narrowed_to(Scope(network_ids=frozenset(user.network_ids)))
        return actions, scope

    async def refresh(self, token: str) -> TokenPair:
        """Rotate: the presented refresh token is consumed; presenting it again is reuse, and
        reuse revokes the whole family."""
        user, principal = await self._user_of_refresh(token)
        consumed = await self.sessions.consume_refresh(principal.jti)
        if consumed is Consumed.REUSED:
            log.warning("refresh token reuse detected; revoking login session of user %d", user.id)
            await self.revoke_session(principal.sid, reason=RevocationReason.REFRESH_REUSE)
            raise Unauthorized("Refresh token reuse detected; the session has been revoked")
        if consumed is Consumed.UNKNOWN:
            raise Unauthorized("Invalid token")
        actions, scope = await self._current_rights(user, principal)
        return await self._issue_pair(user, actions, scope, sid=principal.sid)

    async def access_from_refresh(self, token: str) -> IssuedToken:
        """DeviceHive's refresh: a new access token; the refresh token stays valid."""
        user, principal = await self._user_of_refresh(token)
        if not await self.sessions.is_refresh_known(principal.jti):
            raise Unauthorized("Invalid token")
        actions, scope = await self._current_rights(user, principal)
        return self._issue(ACCESS, user, principal.sid, actions, scope, self.access_ttl)

    async def mint(self, caller: Principal, request: MintRequest) -> TokenPair:
        """A token for the caller or (with ManageUser) another user, never beyond the rights of
        either: asking for more is a 403 that names what exceeds."""
        for_other = request.user_id is not None and request.user_id != caller.user_id
        if for_other and not caller.may(Action.ManageUser):
            raise Forbidden("Minting a token for another user needs ManageUser")
        target = await self.users.get(
            caller.user_id if request.user_id is None else request.user_id
        )
        if target is None:
            raise NotFound("User not found")
        if not target.active:
            raise Forbidden("User account is disabled")
        if request.expires_in is not None and request.expires_in > self.refresh_ttl:
            raise Unprocessable(f"expires_in must be at most {int(self.refresh_ttl)} seconds")

        caller_user = (
            target if target.id == caller.user_id else await self.users.get(caller.user_id)
        )
        if caller_user is None or not caller_user.active:
            raise TokenRevoked()
        caller_limit = caller.actions & ROLES[caller_user.role]
        target_limit = ROLES[target.role]
        wanted = request.actions if request.actions is not None else caller_limit & target_limit
        if beyond := wanted - caller_limit:
            raise Forbidden(f"Requested actions exceed your own rights: {_names(beyond)}")
        if beyond := wanted - target_limit:
            raise Forbidden(f"Requested actions exceed the user's rights: {_names(beyond)}")

        scope = await self._mint_scope(caller, caller_user, target, request)
        return await self._issue_pair(target, wanted, scope, access_ttl=request.expires_in)

    async def _mint_scope(
        self, caller: Principal, caller_user: User, target: User, request: MintRequest
    ) -> Scope:
        limits = [caller.scope]
        for holder in (caller_user, target):
            if holder.role != "admin":
                limits.append(Scope(network_ids=frozenset(holder.network_ids)))
        if request.network_ids is not None:
            for limit in limits:
                if limit.network_ids is not None and (
                    beyond := request.network_ids - limit.network_ids
                ):
                    raise Forbidden(
                        "Requested networkIds exceed what the caller and the user may reach: "
                        + ", ".join(map(str, sorted(beyond)))
                    )
        if request.device_ids is not None:
            if caller.scope.device_ids is not None and (
                beyond_devices := request.device_ids - caller.scope.device_ids
            ):
                raise Forbidden(
                    "Requested deviceIds exceed the caller's token: "
                    + ", ".join(sorted(beyond_devices))
                )
            if not (caller_user.role == "admin" and target.role == "admin"):
                located = await self.devices.networks_of(request.device_ids)
                unreachable = sorted(
                    device_id
                    for device_id in request.device_ids
                    if device_id not in located
                    or not all(
                        limit.network_ids is None or located[device_id] in limit.network_ids
                        for limit in limits
                    )
                )
                if unreachable:
                    raise Forbidden(
                        "Requested deviceIds exceed what the caller and the user may reach: "
                        + ", ".join(unreachable)
                    )
        scope = Scope(network_ids=request.network_ids, device_ids=request.device_ids)
        return scope.narrowed_to(caller.scope)

    # -- revoking --------------------------------------------------------------------------

    def _revocation(
        self, kind: RevocationKind, subject: str, reason: RevocationReason, expires_at: float
    ) -> Revocation:
        return Revocation(
            kind=kind,
            subject=subject,
            reason=str(reason),
            revoked_at=time.time(),
            expires_at=expires_at,
        )

    async def revoke_session(
        self, sid: str, *, reason: RevocationReason, jti: str | None = None, exp: float = 0
    ) -> Receipt:
        horizon = time.time() + self.refresh_ttl
        revocations = [self._revocation("sid", sid, reason, horizon)]
        if jti is not None:
            revocations.append(self._revocation("jti", jti, reason, exp))
        receipt = await self.revoker.revoke(*revocations)
        # Bookkeeping only (the revocation rows are what every check reads): after the fan-out,
        # so that it does not delay the close frames.
        await self.sessions.close(sid)
        return receipt

    async def logout(self, principal: Principal) -> Receipt:
        return await self.revoke_session(
            principal.sid,
            reason=RevocationReason.LOGOUT,
            jti=principal.jti,
            exp=principal.expires_at,
        )

    async def revoke_user(self, user_id: int, *reasons: RevocationReason) -> Receipt:
        """Every token the user holds, issued before now, stops working everywhere."""
        horizon = time.time() + max(self.refresh_ttl, self.access_ttl)
        revocation = Revocation(
            kind="user",
            subject=str(user_id),
            reason=reasons_text(reasons),
            revoked_at=time.time(),
            expires_at=horizon,
        )
        receipt = await self.revoker.revoke(revocation)
        await self.sessions.close_all(user_id)
        return receipt

    async def revoke_token(self, jti: str, reason: RevocationReason) -> Receipt:
        horizon = time.time() + max(self.refresh_ttl, self.access_ttl)
        return await self.revoker.revoke(self._revocation("jti", jti, reason, horizon))

    async def revoke_device(self, device_id: str, reason: RevocationReason) -> Receipt:
        horizon = time.time() + max(self.refresh_ttl, self.access_ttl)
        return await self.revoker.revoke(self._revocation("device", device_id, reason, horizon))
