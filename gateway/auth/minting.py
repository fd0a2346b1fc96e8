"""The rules of minting and refreshing as pure functions: what a new token may do, how long it
lives, and which login session it dies with.

Pure so that a property test can check them on thousands of cases without a database; the
service gathers the inputs (users, device locations, the caller's family end) and records the
outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.auth.permissions import ROLES
from gateway.errors import Forbidden, Unauthorized, Unprocessable
from gateway.types import Action, Principal, Scope, Topic, User

MAX_CHAIN = 4
"""How deep tokens minted from minted tokens may nest (each level carries its parents' ids)."""

SESSION_ENDED = "Your login session has ended; log in again"

MAX_TOKEN_LENGTH = 8190 - len("Bearer ")
"""The longest token the gateway accepts back: aiohttp's HTTP parser refuses a header value over
8190 bytes with its own 400 before any handler runs, and a token travels as ``Bearer <token>``."""


def presentable(*tokens: str) -> None:
    """Refuses (422) a mint whose tokens would be too long to present: a token nobody can use
    is a trap (1,000 device ids made 89 KB)."""
    longest = max(len(token) for token in tokens)
    if longest > MAX_TOKEN_LENGTH:
        raise Unprocessable(
            f"The token would be {longest:,} characters, and at most {MAX_TOKEN_LENGTH:,} "
            "fit in an Authorization header: name fewer devices or networks"
        )


@dataclass(frozen=True, slots=True)
class MintRequest:
    user_id: int | None = None
    actions: frozenset[Action] | None = None
    network_ids: frozenset[int] | None = None
    device_ids: frozenset[str] | None = None
    expires_in: float | None = None
    plugin_id: int | None = None
    topic: Topic | None = None
    """A plugin's tokens: its id and topic (carried in the scope, claim ``plugin``)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """A user as the rules see them."""

    role: str
    network_ids: frozenset[int]

    @classmethod
    def of(cls, user: User) -> Holder:
        return cls(user.role, frozenset(user.network_ids))

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Lifetimes:
    access_ttl: float
    refresh_ttl: float
    mint_max_ttl: float


@dataclass(frozen=True, slots=True)
class Grant:
    """What a minted pair carries; ``parents`` is empty for a family of its own."""

    actions: frozenset[Action]
    scope: Scope
    access_expires: float
    family_ends: float
    parents: tuple[str, ...]


def _names(actions: Iterable[Action]) -> str:
    return ", ".join(sorted(action.name for action in actions))


def is_tied(caller: Principal, caller_user: Holder) -> bool:
    """A caller who may not manage users mints only within their own login session."""
    return Action.ManageUser not in caller.actions & ROLES[caller_user.role]


def mint_grant(
    caller: Principal,
    caller_user: Holder,
    target: Holder,
    request: MintRequest,
    *,
    located: Mapping[str, int],
    caller_family_ends: float | None,
    now: float,
    lifetimes: Lifetimes,
) -> Grant:
    """Never beyond the caller's nor the user's rights (asking for more is a 403 naming what
    exceeds); never past ``GATEWAY_MINT_MAX_TTL``; and, for a caller without ManageUser, never
    past the caller's own login session, whose revocation it shares."""
    caller_limit = caller.actions & ROLES[caller_user.role]
    target_limit = ROLES[target.role]
    wanted = request.actions if request.actions is not None else caller_limit & target_limit
    if beyond := wanted - caller_limit:
        raise Forbidden(f"Requested actions exceed your own rights: {_names(beyond)}")
    if beyond := wanted - target_limit:
        raise Forbidden(f"Requested actions exceed the user's rights: {_names(beyond)}")
    scope = _scope(caller, caller_user, target, request, located)

    if request.expires_in is not None and request.expires_in > lifetimes.mint_max_ttl:
        raise Unprocessable(f"expires_in must be at most {int(lifetimes.mint_max_ttl)} seconds")
    lifetime = lifetimes.refresh_ttl if request.expires_in is None else request.expires_in
    ends = now + lifetime
    parents: tuple[str, ...] = ()
    if is_tied(caller, caller_user):
        if caller_family_ends is None or caller_family_ends < now + 1:
            raise Unauthorized(SESSION_ENDED)
        if len(caller.parents) >= MAX_CHAIN:
            raise Forbidden(f"Tokens minted from minted tokens nest at most {MAX_CHAIN} deep")
        ends = min(ends, caller_family_ends)
        parents = (*caller.parents, caller.sid)
    access = request.expires_in if request.expires_in is not None else lifetimes.access_ttl
    return Grant(
        actions=wanted,
        scope=scope,
        access_expires=min(now + access, ends),
        family_ends=ends,
        parents=parents,
    )


def _scope(
    caller: Principal,
    caller_user: Holder,
    target: Holder,
    request: MintRequest,
    located: Mapping[str, int],
) -> Scope:
    limits = [caller.scope]
    for holder in (caller_user, target):
        if not holder.is_admin:
            limits.append(Scope(network_ids=holder.network_ids))
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
        if not (caller_user.is_admin and target.is_admin):
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
    scope = Scope(
        network_ids=request.network_ids,
        device_ids=request.device_ids,
        plugin_id=request.plugin_id,
        topic=request.topic,
    )
    return scope.narrowed_to(caller.scope)


def needs_locations(caller_user: Holder, target: Holder, request: MintRequest) -> bool:
    return request.device_ids is not None and not (caller_user.is_admin and target.is_admin)


def refreshed_rights(principal: Principal, user: Holder) -> tuple[frozenset[Action], Scope]:
    """A refreshed token keeps the presented one's rights, cut to what the user may do now."""
    actions = principal.actions & ROLES[user.role]
    scope = principal.scope
    if not user.is_admin and scope.network_ids is not None:
        scope = scope.narrowed_to(Scope(network_ids=user.network_ids))
    return actions, scope


def rotated_lifetimes(
    now: float, lifetimes: Lifetimes, family_ends: float | None
) -> tuple[float, float]:
    """(access, refresh) expiries of a rotation: a family with a hard end never outlives it."""
    refresh = now + lifetimes.refresh_ttl
    if family_ends is not None:
        refresh = min(refresh, family_ends)
    return min(now + lifetimes.access_ttl, refresh), refresh


def access_lifetime(now: float, lifetimes: Lifetimes, refresh_expires: float) -> float:
    """An access token never outlives the refresh token it came from."""
    return min(now + lifetimes.access_ttl, refresh_expires)
