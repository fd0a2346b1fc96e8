"""A proof by property: for any caller rights, user rights, memberships and request, a minted or
refreshed token may do no more than the caller and the user together, reach no device or network
that either could not, and expire within the rule.

The pure rules run on thousands of cases; the same properties are then checked on fewer cases
end to end, over real HTTP and the WebSocket ``token/refresh`` path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.auth.minting import (
    MAX_CHAIN,
    Holder,
    Lifetimes,
    MintRequest,
    access_lifetime,
    is_tied,
    mint_grant,
    refreshed_rights,
    rotated_lifetimes,
)
from gateway.auth.permissions import ALL_ACTIONS, ROLES
from gateway.errors import Forbidden, Unauthorized, Unprocessable
from gateway.types import Action, Principal, Scope
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, create_user, login
from tests.realtime.helpers import connect, create_network, put_device, rest
from tests.support.tokens import split

NETWORKS = [1, 2, 3, 4, 5]
DEVICES = [f"d{i}" for i in range(8)]
NOW = 1_800_000_000.0
LIFETIMES = Lifetimes(access_ttl=1800.0, refresh_ttl=30 * 86400.0, mint_max_ttl=365 * 86400.0)


def subsets(items: list[Any]) -> st.SearchStrategy[frozenset[Any]]:
    """Any subset, drawn as one bit mask: cheap enough for thousands of examples."""
    return st.integers(0, 2 ** len(items) - 1).map(
        lambda mask: frozenset(item for bit, item in enumerate(items) if mask >> bit & 1)
    )


actions = subsets(sorted(ALL_ACTIONS))
networks = subsets(NETWORKS)
maybe_networks = st.none() | networks
maybe_devices = st.none() | subsets([*DEVICES, "ghost"])
holders = st.builds(Holder, role=st.sampled_from(["admin", "client"]), network_ids=networks)
located = st.lists(
    st.sampled_from([0, *NETWORKS]), min_size=len(DEVICES), max_size=len(DEVICES)
).map(lambda placed: {device: net for device, net in zip(DEVICES, placed, strict=True) if net})


@st.composite
def principals(draw: st.DrawFn, holder: Holder) -> Principal:
    return Principal(
        user_id=1,
        role=holder.role,
        actions=draw(actions),
        scope=Scope(network_ids=draw(maybe_networks), device_ids=draw(maybe_devices)),
        jti="jti",
        sid="caller-sid",
        issued_at=NOW - 10,
        expires_at=NOW + 1800,
        parents=tuple(f"p{i}" for i in range(draw(st.integers(0, MAX_CHAIN + 1)))),
    )


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    caller_user = draw(holders)
    caller = draw(principals(caller_user))
    for_other = Action.ManageUser in caller.actions & ROLES[caller_user.role] and draw(
        st.booleans()
    )
    target = draw(holders) if for_other else caller_user
    request = MintRequest(
        actions=draw(st.none() | actions),
        network_ids=draw(maybe_networks),
        device_ids=draw(maybe_devices),
        expires_in=draw(st.none() | st.floats(1, 2 * LIFETIMES.mint_max_ttl)),
    )
    family_ends = draw(st.none() | st.floats(NOW - 100, NOW + 60 * 86400.0))
    return {
        "caller": caller,
        "caller_user": caller_user,
        "target": target,
        "request": request,
        "located": draw(located),
        "caller_family_ends": family_ends,
    }


def reaches(scope: Scope, holder: Holder, device: str, network: int) -> bool:
    """What the per-message check lets a token of ``holder`` with ``scope`` touch."""
    return scope.allows(device, network) and (holder.is_admin or network in holder.network_ids)


def sees(scope: Scope, holder: Holder, network: int) -> bool:
    allowed = scope.network_ids is None or network in scope.network_ids
    return allowed and (holder.is_admin or network in holder.network_ids)


def assert_within(
    scope: Scope, holder: Holder, bounds: list[tuple[Scope, Holder]], where: dict[str, int]
) -> None:
    for network in NETWORKS:
        if sees(scope, holder, network):
            assert all(sees(s, h, network) for s, h in bounds), network
    for device, network in where.items():
        if reaches(scope, holder, device, network):
            assert all(reaches(s, h, device, network) for s, h in bounds), device
    if scope.device_ids is not None:
        for bound, _ in bounds:
            assert bound.device_ids is None or scope.device_ids <= bound.device_ids


def check_grant(case: dict[str, Any], now: float) -> None:
    caller: Principal = case["caller"]
    caller_user: Holder = case["caller_user"]
    target: Holder = case["target"]
    request: MintRequest = case["request"]
    try:
        grant = mint_grant(
            caller,
            caller_user,
            target,
            request,
            located=case["located"],
            caller_family_ends=case["caller_family_ends"],
            now=now,
            lifetimes=LIFETIMES,
        )
    except (Forbidden, Unauthorized, Unprocessable):
        return
    assert grant.actions <= caller.actions & ROLES[caller_user.role] & ROLES[target.role]
    assert_within(
        grant.scope,
        target,
        [(caller.scope, caller_user), (Scope(), target)],
        case["located"],
    )
    assert request.expires_in is None or request.expires_in <= LIFETIMES.mint_max_ttl
    lifetime = LIFETIMES.refresh_ttl if request.expires_in is None else request.expires_in
    access = LIFETIMES.access_ttl if request.expires_in is None else request.expires_in
    assert grant.family_ends <= now + lifetime
    assert grant.access_expires <= min(now + access, grant.family_ends)
    if is_tied(caller, caller_user):
        assert case["caller_family_ends"] is not None
        assert grant.family_ends <= case["caller_family_ends"]
        assert grant.parents == (*caller.parents, caller.sid)
    else:
        assert grant.parents == ()


@settings(max_examples=2000, deadline=None)
@given(case=cases())
def test_a_minted_token_never_exceeds_the_caller_nor_the_user(case: dict[str, Any]) -> None:
    check_grant(case, NOW)


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_a_mint_that_asks_for_nothing_is_granted_while_the_session_lives(
    case: dict[str, Any],
) -> None:
    ends = case["caller_family_ends"]
    tied = is_tied(case["caller"], case["caller_user"])
    if tied and (ends is None or ends < NOW + 1 or len(case["caller"].parents) >= MAX_CHAIN):
        return
    mint_grant(
        case["caller"],
        case["caller_user"],
        case["target"],
        MintRequest(),
        located=case["located"],
        caller_family_ends=ends,
        now=NOW,
        lifetimes=LIFETIMES,
    )


@settings(max_examples=500, deadline=None)
@given(
    user=holders,
    case=st.data(),
    family_ends=st.none() | st.floats(NOW - 100, NOW + 60 * 86400.0),
    where=located,
)
def test_a_refreshed_token_never_exceeds_the_token_nor_the_user(
    user: Holder, case: st.DataObject, family_ends: float | None, where: dict[str, int]
) -> None:
    presented = case.draw(principals(case.draw(holders)))
    granted, scope = refreshed_rights(presented, user)
    assert granted <= presented.actions & ROLES[user.role]
    assert_within(scope, user, [(presented.scope, user)], where)
    access, refresh = rotated_lifetimes(NOW, LIFETIMES, family_ends)
    assert access <= refresh <= NOW + LIFETIMES.refresh_ttl
    assert access <= NOW + LIFETIMES.access_ttl
    assert family_ends is None or refresh <= family_ends
    ws_access = access_lifetime(NOW, LIFETIMES, presented.expires_at)
    assert ws_access <= min(presented.expires_at, NOW + LIFETIMES.access_ttl)


# -- end to end: the same properties over real HTTP and the WebSocket --------------------------


@dataclass
class Live:
    client: TestClient[Any, Any]
    admin: str
    networks: list[int]
    devices: dict[str, int]
    users: dict[str, tuple[int, str, frozenset[int]]]
    """email -> (id, role, memberships)"""


@pytest.fixture
async def live(client: TestClient[Any, Any]) -> Live:
    admin = (await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"]
    nets = [await create_network(client, admin, f"net{i}") for i in range(3)]
    devices = {}
    for index, network in enumerate([nets[0], nets[0], nets[1], nets[2]]):
        await put_device(client, admin, f"e{index}", network)
        devices[f"e{index}"] = network
    users: dict[str, tuple[int, str, frozenset[int]]] = {}
    for email, role, member in (
        ("c1@example.com", "client", [nets[0]]),
        ("c2@example.com", "client", [nets[0], nets[1]]),
        ("a2@example.com", "admin", []),
    ):
        made = await create_user(client, bearer(admin), email=email, role=role, network_ids=member)
        users[email] = (made["id"], role, frozenset(member))
    return Live(client, admin, nets, devices, users)


@st.composite
def live_requests(draw: st.DrawFn) -> dict[str, Any]:
    caller = draw(st.sampled_from(["c1@example.com", "c2@example.com", "a2@example.com"]))
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["actions"] = sorted(
            a.name for a in draw(st.frozensets(st.sampled_from(sorted(ALL_ACTIONS))))
        )
    if draw(st.booleans()):
        body["networkIds"] = draw(st.lists(st.integers(0, 2), max_size=3, unique=True))
    if draw(st.booleans()):
        body["deviceIds"] = draw(
            st.lists(st.sampled_from(["e0", "e1", "e2", "e3"]), max_size=3, unique=True)
        )
    if draw(st.booleans()):
        body["expires_in"] = draw(st.integers(1, 40 * 86400))
    if draw(st.booleans()):
        body["user_id"] = draw(
            st.sampled_from(["c1@example.com", "c2@example.com", "a2@example.com"])
        )
    return {"caller": caller, "body": body}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=live_requests())
async def test_over_http_and_the_websocket_a_mint_stays_within_both(
    live: Live, case: dict[str, Any]
) -> None:
    caller_email = case["caller"]
    _, caller_role, caller_nets = live.users[caller_email]
    tokens = await login(live.client, caller_email, "client-password")
    body = dict(case["body"])
    if "networkIds" in body:
        body["networkIds"] = [live.networks[i] for i in body["networkIds"]]
    if "user_id" in body:
        body["user_id"] = live.users[body["user_id"]][0]
    started = time.time()
    response = await live.client.post(
        "/v1/auth/token/create", json=body, headers=bearer(tokens["access_token"])
    )
    if response.status != 201:
        assert response.status in (403, 422), await response.text()
        return
    pair = await response.json()
    target_id = pair["user_id"]
    target_role, target_nets = next(
        (role, nets) for uid, role, nets in live.users.values() if uid == target_id
    )
    session_ends = split(tokens["refresh_token"])[1]["exp"]

    socket = await connect(live.client)
    refreshed = (await socket.ok("token/refresh", refreshToken=pair["refresh_token"]))[
        "accessToken"
    ]
    for token in (pair["access_token"], refreshed):
        claims = split(token)[1]
        granted = {Action(a) for a in claims["actions"]}
        assert granted <= ROLES[caller_role] & ROLES[target_role]
        if "actions" in body:
            assert granted <= set(parse_names(body["actions"]))
        scope = Scope(
            network_ids=None if claims["networkIds"] == ["*"] else frozenset(claims["networkIds"]),
            device_ids=None if claims["deviceIds"] == ["*"] else frozenset(claims["deviceIds"]),
        )
        assert_within(
            scope,
            Holder(target_role, target_nets),
            [
                (Scope(), Holder(caller_role, caller_nets)),
                (Scope(), Holder(target_role, target_nets)),
            ],
            live.devices,
        )
        assert claims["exp"] <= claims["iat"] + 365 * 86400 + 1
        if caller_role != "admin":
            assert claims["exp"] <= session_ends
            assert claims["fam"] == [split(tokens["access_token"])[1]["sid"]]
        if "expires_in" in body:
            assert claims["exp"] <= started + body["expires_in"] + 1
    await socket.close()
    await rest(live.client, "POST", "/v1/auth/logout", tokens["access_token"], 204)


def parse_names(names: list[str]) -> list[Action]:
    return [Action[name] for name in names]
