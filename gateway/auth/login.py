"""The token lifecycle: login, refresh, logout, minting, the per-request token check, revoking."""

from __future__ import annotations

import logging
import time
import uuid
from typing import NoReturn

from gateway.auth.minting import (
    SESSION_ENDED,
    Holder,
    Lifetimes,
    MintRequest,
    access_lifetime,
    is_tied,
    mint_grant,
    needs_locations,
    presentable,
    refreshed_rights,
    rotated_lifetimes,
)
from gateway.auth.passwords import Passwords
from gateway.auth.permissions import ROLES
from gateway.auth.revocation import RevocationView
from gateway.auth.revoker import Receipt, Revoker, bookkeeping
from gateway.auth.throttle import LoginThrottle, Outcome
from gateway.auth.tokens import (
    ACCESS,
    REFRESH,
    IssuedToken,
    TokenCodec,
    TokenPair,
    principal_from_claims,
)
from gateway.errors import Forbidden, NotFound, TokenRevoked, TooManyRequests, Unauthorized
from gateway.metrics import Metrics
from gateway.store.devices import DeviceStore
from gateway.store.sessions import Consumed, Guard, SessionStore
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
RACED = "The account changed or was revoked during login; log in again"


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
        mint_max_ttl: float,
        metrics: Metrics,
    ) -> None:
        self._logins = metrics.logins_by_outcome
        self.users = users
        self.sessions = sessions
        self.devices = devices
        self.codec = codec
        self.passwords = passwords
        self.throttle = throttle
        self.view = view
        self.revoker = revoker
        self.lifetimes = Lifetimes(access_ttl, refresh_ttl, mint_max_ttl)
        # Revocations are kept as long as anything they cover can still be valid.
        self.horizon = max(access_ttl, refresh_ttl, mint_max_ttl)

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
        *,
        read_at: float,
        expires: float,
        parents: tuple[str, ...] = (),
    ) -> IssuedToken:
        """Dated ``read_at``, taken before the rights were read, so a cut-off recorded meanwhile
        covers the token; it expires at ``expires``, counted from when it is issued."""
        return self.codec.issue(
            typ=typ,
            user_id=user.id,
            role=user.role,
            sid=sid,
            actions=actions,
            scope=scope,
            ttl=expires - read_at,
            now=read_at,
            parents=parents,
        )

    def _pair(
        self,
        user: User,
        actions: frozenset[Action],
        scope: Scope,
        *,
        sid: str,
        read_at: float,
        now: float,
        access_expires: float,
        refresh_expires: float,
        parents: tuple[str, ...] = (),
    ) -> TokenPair:
        """Signed but not yet recorded: the caller records the refresh token under its guard.
        ``now`` is when the expiries were counted from (what ``expires_in`` reports)."""
        access, refresh = (
            self._issue(
                typ, user, sid, actions, scope, read_at=read_at, expires=end, parents=parents
            )
            for typ, end in ((ACCESS, access_expires), (REFRESH, refresh_expires))
        )
        return TokenPair(access=access, refresh=refresh, user_id=user.id, answered_at=now)

    async def login(self, name: str, password: str, address: str) -> TokenPair:
        # PostgreSQL's lower() identifies accounts; Python's differs beyond ASCII ("Σ", "İ"):
        # the name is looked up as given, and casefold() keys the throttle.
        name = name.strip()
        account = name.casefold()
        try:
            ticket = await self.throttle.admit(account, address)
        except TooManyRequests:
            self._logins["throttled"].inc()
            raise
        outcome = Outcome.VOID
        try:
            read_at = time.time()
            user = await self.users.by_email(name)
            matched = await self.passwords.verify(user.password_hash if user else None, password)
            if not matched or user is None:
                outcome = Outcome.FAILED
            elif user.active:
                outcome = Outcome.SUCCEEDED
        finally:
            await self.throttle.settle(ticket, outcome)
        if not matched or user is None:
            self._logins["invalid"].inc()
            raise Unauthorized(INVALID_CREDENTIALS)
        if not user.active:
            self._logins["disabled"].inc()
            raise Forbidden("User account is disabled")
        sid = str(uuid.uuid4())
        now, lifetimes = time.time(), self.lifetimes
        pair = self._pair(
            user,
            ROLES[user.role],
            Scope(),
            sid=sid,
            read_at=read_at,
            now=now,
            access_expires=now + lifetimes.access_ttl,
            refresh_expires=now + lifetimes.refresh_ttl,
        )
        # The password was checked against what was read before hashing: if it changed, or a
        # cut-off was recorded since, anywhere, this login answers nothing usable.
        if not await self.sessions.open_login(
            sid,
            user.id,
            password_hash=user.password_hash,
            role=user.role,
            since=pair.access.issued_at,
        ):
            raise Unauthorized(RACED)
        await self.sessions.add_refresh(pair.refresh.jti, sid, pair.refresh.expires_at)
        self._logins["success"].inc()
        return pair

    async def _user_of_refresh(self, token: str) -> tuple[User, Principal]:
        principal = principal_from_claims(self.codec.decode(token, REFRESH))
        if self.view.is_revoked(principal):
            raise TokenRevoked()
        user = await self.users.get(principal.user_id)
        if user is None or not user.active:
            raise TokenRevoked()
        return user, principal

    async def _reused(self, user: User, principal: Principal) -> NoReturn:
        log.warning("refresh token reuse detected; revoking login session of user %d", user.id)
        await self.revoke_session(principal.sid, reason=RevocationReason.REFRESH_REUSE)
        raise Unauthorized("Refresh token reuse detected; the session has been revoked")

    async def refresh(self, token: str) -> TokenPair:
        """Rotate: the presented refresh token is consumed; presenting it again, on either
        transport, is reuse, and reuse revokes the whole family."""
        read_at = time.time()
        user, principal = await self._user_of_refresh(token)
        consumed = await self.sessions.consume_refresh(principal.jti)
        if consumed.state is Consumed.REUSED:
            await self._reused(user, principal)
        if consumed.state is Consumed.UNKNOWN:
            raise Unauthorized("Invalid token")
        actions, scope = refreshed_rights(principal, Holder.of(user))
        now = time.time()
        access_expires, refresh_expires = rotated_lifetimes(
            now, self.lifetimes, consumed.family_ends
        )
        pair = self._pair(
            user,
            actions,
            scope,
            sid=principal.sid,
            read_at=read_at,
            now=now,
            access_expires=access_expires,
            refresh_expires=refresh_expires,
            parents=principal.parents,
        )
        guard = Guard.presented(user.id, principal)
        if not await self.sessions.add_refresh(
            pair.refresh.jti, principal.sid, pair.refresh.expires_at, guard
        ):
            raise TokenRevoked()
        return pair

    async def access_from_refresh(self, token: str) -> IssuedToken:
        """DeviceHive's refresh: a new access token, no rotation, while the presented refresh
        token is its family's current one; a rotated one is reuse, as over REST."""
        read_at = time.time()
        user, principal = await self._user_of_refresh(token)
        actions, scope = refreshed_rights(principal, Holder.of(user))
        access = self._issue(
            ACCESS,
            user,
            principal.sid,
            actions,
            scope,
            read_at=read_at,
            expires=access_lifetime(time.time(), self.lifetimes, principal.expires_at),
            parents=principal.parents,
        )
        known = await self.sessions.peek_refresh(principal.jti, Guard.presented(user.id, principal))
        if known.state is Consumed.REUSED:
            await self._reused(user, principal)
        if known.state is Consumed.UNKNOWN:
            raise Unauthorized("Invalid token")
        if not known.live:
            raise TokenRevoked()
        return access

    async def mint(self, caller: Principal, request: MintRequest) -> TokenPair:
        """A token within the caller's and the user's rights (see ``minting``): recorded as a
        family of its own, tied to the caller's unless the caller may manage users."""
        read_at = time.time()
        for_other = request.user_id is not None and request.user_id != caller.user_id
        if for_other and not caller.may(Action.ManageUser):
            raise Forbidden("Minting a token for another user needs ManageUser")
        target = await self.users.get(
            caller.user_id if request.user_id is None else request.user_id
        )
        if target is None:  # for themself: the caller's user is gone, its token as good as revoked
            raise NotFound("User not found") if for_other else TokenRevoked()
        if not target.active:
            raise Forbidden("User account is disabled")
        caller_user = (
            target if target.id == caller.user_id else await self.users.get(caller.user_id)
        )
        if caller_user is None or not caller_user.active:
            raise TokenRevoked()
        caller_holder, target_holder = Holder.of(caller_user), Holder.of(target)
        tied = is_tied(caller, caller_holder)
        located: dict[str, int] = {}
        if request.device_ids is not None and needs_locations(
            caller_holder, target_holder, request
        ):
            located = await self.devices.networks_of(request.device_ids)
        now = time.time()
        grant = mint_grant(
            caller,
            caller_holder,
            target_holder,
            request,
            located=located,
            caller_family_ends=await self.sessions.family_ends(caller.sid) if tied else None,
            now=now,
            lifetimes=self.lifetimes,
        )
        sid = str(uuid.uuid4())
        pair = self._pair(
            target,
            grant.actions,
            grant.scope,
            sid=sid,
            read_at=read_at,
            now=now,
            access_expires=grant.access_expires,
            refresh_expires=grant.family_ends,
            parents=grant.parents,
        )
        presentable(pair.access.token, pair.refresh.token)
        # Nothing may have cut off the caller's token (when minting for themself) or, since the
        # read, the user; nor revoked the caller's token or the families it descends from.
        since = caller.issued_at if target.id == caller.user_id else pair.access.issued_at
        ends = await self.sessions.open_minted(
            sid,
            target.id,
            ends=grant.family_ends,
            parent=caller.sid if tied else None,
            guard=Guard(
                target.id,
                grant.parents,
                since,
                caller.jti,
                caller.scope.device_ids or frozenset(),
            ),
        )
        if ends is None or ends < pair.refresh.expires_at:
            raise Unauthorized(SESSION_ENDED) if tied else TokenRevoked()
        await self.sessions.add_refresh(pair.refresh.jti, sid, pair.refresh.expires_at)
        return pair

    # -- revoking --------------------------------------------------------------------------

    def _revocation(
        self,
        kind: RevocationKind,
        subject: str,
        reason: RevocationReason,
        expires_at: float | None = None,
    ) -> Revocation:
        """Kept until ``expires_at``: by default as long as anything it covers may be valid."""
        now = time.time()
        return Revocation(
            kind=kind,
            subject=subject,
            reason=str(reason),
            revoked_at=now,
            expires_at=now + self.horizon if expires_at is None else expires_at,
        )

    async def revoke_session(
        self, sid: str, *, reason: RevocationReason, jti: str | None = None, exp: float = 0
    ) -> Receipt:
        revocations = [self._revocation("sid", sid, reason)]
        if jti is not None:
            revocations.append(self._revocation("jti", jti, reason, exp))
        receipt = await self.revoker.revoke(*revocations)
        # Bookkeeping only (the revocation rows are what every check reads): after the fan-out,
        # so that it does not delay the close frames.
        await bookkeeping(self.sessions.close(sid), "a revoked login session")
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
        revocation = Revocation(
            kind="user",
            subject=str(user_id),
            reason=reasons_text(reasons),
            revoked_at=time.time(),
            expires_at=time.time() + self.horizon,
        )
        receipt = await self.revoker.revoke(revocation)
        await bookkeeping(self.sessions.close_all(user_id), f"user {user_id}'s login sessions")
        return receipt

    async def revoke_token(self, jti: str, reason: RevocationReason) -> Receipt:
        return await self.revoker.revoke(self._revocation("jti", jti, reason))

    async def revoke_device(self, device_id: str, reason: RevocationReason) -> Receipt:
        return await self.revoker.revoke(self._revocation("device", device_id, reason))
