"""The in-memory revocation view: what each kind of revocation covers, and how it is kept
current from PostgreSQL when a bus message never arrives."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import WIRING_KEY
from gateway.auth.revocation import RevocationView
from gateway.types import Action, Principal, Revocation, Scope
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AppFactory, bearer, login, wait_for
from tests.support.http import expect_empty, expect_error, expect_json, me_status
from tests.support.tokens import split

NOW = 1_700_000_000.0


def principal(
    *,
    user_id: int = 1,
    jti: str = "jti-1",
    sid: str = "sid-1",
    issued_at: float = NOW,
    device_ids: frozenset[str] | None = None,
) -> Principal:
    return Principal(
        user_id=user_id,
        role="client",
        actions=frozenset({Action.GetDevice}),
        scope=Scope(device_ids=device_ids),
        jti=jti,
        sid=sid,
        issued_at=issued_at,
        expires_at=issued_at + 1800,
    )


def revocation(kind: Any, subject: str, revoked_at: float = NOW + 1) -> Revocation:
    return Revocation(
        kind=kind, subject=subject, reason="test", revoked_at=revoked_at, expires_at=NOW + 3600
    )


def test_an_empty_view_revokes_nothing() -> None:
    view = RevocationView()
    assert len(view) == 0
    assert not view.is_revoked(principal())


def test_a_jti_revocation_covers_that_token_only() -> None:
    view = RevocationView()
    view.apply(revocation("jti", "jti-1"))
    assert view.is_revoked(principal(jti="jti-1"))
    assert not view.is_revoked(principal(jti="jti-2"))


def test_a_session_revocation_covers_its_whole_family_whenever_issued() -> None:
    view = RevocationView()
    view.apply(revocation("sid", "sid-1"))
    assert view.is_revoked(principal(sid="sid-1", jti="a"))
    assert view.is_revoked(principal(sid="sid-1", jti="b", issued_at=NOW + 100))
    assert not view.is_revoked(principal(sid="sid-2"))


def test_a_user_revocation_is_a_cut_off_in_time() -> None:
    view = RevocationView()
    view.apply(revocation("user", "1", revoked_at=NOW + 10))
    assert view.is_revoked(principal(user_id=1, issued_at=NOW + 9.999))
    assert not view.is_revoked(principal(user_id=1, issued_at=NOW + 10.001))
    assert not view.is_revoked(principal(user_id=2, issued_at=NOW))


def test_a_later_user_cut_off_wins_and_an_earlier_one_does_not_undo_it() -> None:
    view = RevocationView()
    view.apply(revocation("user", "1", revoked_at=NOW + 20))
    view.apply(revocation("user", "1", revoked_at=NOW + 10))
    assert view.is_revoked(principal(user_id=1, issued_at=NOW + 15))


def test_a_device_revocation_covers_tokens_scoped_to_that_device() -> None:
    view = RevocationView()
    view.apply(revocation("device", "dev-1", revoked_at=NOW + 10))
    assert view.is_revoked(principal(device_ids=frozenset({"dev-1", "dev-2"})))
    assert not view.is_revoked(principal(device_ids=frozenset({"dev-2"})))
    # A wildcard token is not "scoped to" the device; its rights are checked per message.
    assert not view.is_revoked(principal(device_ids=None))
    assert not view.is_revoked(principal(device_ids=frozenset({"dev-1"}), issued_at=NOW + 11))


def test_covers_agrees_with_the_view() -> None:
    cases = [
        (revocation("jti", "jti-1"), principal()),
        (revocation("sid", "sid-1"), principal()),
        (revocation("user", "1"), principal()),
        (revocation("user", "1", revoked_at=NOW - 1), principal()),
        (revocation("device", "d"), principal(device_ids=frozenset({"d"}))),
        (revocation("device", "d"), principal()),
    ]
    for item, subject in cases:
        view = RevocationView()
        view.apply(item)
        assert item.covers(subject) == view.is_revoked(subject), item


def test_prune_forgets_only_what_has_expired() -> None:
    view = RevocationView()
    view.apply(revocation("jti", "old"))
    view.apply(
        Revocation(kind="jti", subject="new", reason="t", revoked_at=NOW, expires_at=NOW + 7200)
    )
    view.apply(revocation("user", "1"))
    assert len(view) == 3
    view.prune(now=NOW + 5000)
    assert len(view) == 1
    assert view.is_revoked(principal(jti="new"))
    assert not view.is_revoked(principal(jti="old"))


def test_revocations_round_trip_through_dicts_and_reject_unknown_kinds() -> None:
    item = revocation("sid", "sid-1")
    assert Revocation.from_dict(item.to_dict()) == item
    with pytest.raises(ValueError, match="unknown revocation kind 'everything'"):
        Revocation.from_dict({**item.to_dict(), "kind": "everything"})


# -- kept current, over real PostgreSQL -------------------------------------------------------


async def test_authenticating_needs_no_database_round_trip(
    make_client: AppFactory,
) -> None:
    client = await make_client()
    pair = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    await client.app[WIRING_KEY].pool.close()
    response = await client.get("/v1/auth/tokenInfo", headers=bearer(pair["access_token"]))
    info = await expect_json(response, 200)
    assert info["payload"] == split(pair["access_token"])[1]


async def test_a_revocation_written_elsewhere_is_picked_up_by_reconciliation(
    client: TestClient[Any, Any], admin: dict[str, Any], clean_db: str
) -> None:
    """As if another instance revoked the token and its bus message was lost."""
    claims = split(admin["access_token"])[1]
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            """INSERT INTO revocations (kind, subject, reason, revoked_at, expires_at)
               VALUES ('jti', $1, 'elsewhere', $2, $3)""",
            claims["jti"],
            datetime.now(UTC),
            datetime.fromtimestamp(time.time() + 3600, UTC),
        )
    finally:
        await conn.close()
    view = client.app[WIRING_KEY].view
    probe = principal(user_id=int(claims["sub"]), jti=claims["jti"], sid=claims["sid"])
    await wait_for(lambda: view.is_revoked(probe), timeout=3)
    response = await client.get("/v1/auth/me", headers=bearer(admin["access_token"]))
    await expect_error(response, 401, "Token revoked")


async def test_instances_without_a_shared_bus_converge_through_postgresql(
    make_client: AppFactory,
) -> None:
    """Two instances with separate in-process buses: a logout on one reaches the other by
    reconciliation (0.5 s in the tests) instead of never."""
    first = await make_client()
    second = await make_client()
    pair = await login(first, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert await me_status(second, pair["access_token"]) == 200
    await expect_empty(await first.post("/v1/auth/logout", headers=bearer(pair["access_token"])))
    view = second.app[WIRING_KEY].view
    claims = split(pair["access_token"])[1]
    probe = principal(user_id=int(claims["sub"]), jti=claims["jti"], sid=claims["sid"])
    await wait_for(lambda: view.is_revoked(probe), timeout=3)
    response = await second.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    await expect_error(response, 401, "Token revoked")


async def test_a_restarted_instance_loads_earlier_revocations(make_client: AppFactory) -> None:
    first = await make_client()
    pair = await login(first, ADMIN_EMAIL, ADMIN_PASSWORD)
    await expect_empty(
        await first.post("/v1/auth/logout/all", headers=bearer(pair["access_token"]))
    )
    later = await make_client(reconcile_interval=3600.0)
    response = await later.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    await expect_error(response, 401, "Token revoked")
