"""Domain types: close codes chosen by the kind of error, revocations on the wire, reasons."""

from __future__ import annotations

import pytest

from gateway.errors import Forbidden, TokenExpired, TokenRevoked, Unauthorized
from gateway.types import (
    CloseCode,
    Principal,
    Revocation,
    RevocationReason,
    Scope,
    close_code_for,
    reasons_text,
)


def test_a_refused_upgrade_token_closes_by_the_kind_of_error_not_its_text() -> None:
    assert close_code_for(TokenExpired()) is CloseCode.TOKEN_EXPIRED
    assert close_code_for(TokenRevoked()) is CloseCode.TOKEN_REVOKED
    assert close_code_for(TokenRevoked("worded otherwise")) is CloseCode.TOKEN_REVOKED
    assert close_code_for(Unauthorized("Token expired")) is CloseCode.INVALID_TOKEN
    assert close_code_for(Unauthorized("Invalid token")) is CloseCode.INVALID_TOKEN
    assert close_code_for(Forbidden("no")) is CloseCode.INVALID_TOKEN


def test_token_errors_keep_the_statuses_and_messages_clients_read() -> None:
    assert (TokenExpired().status, TokenExpired().message) == (401, "Token expired")
    assert (TokenRevoked().status, TokenRevoked().message) == (401, "Token revoked")


def test_several_reasons_read_as_one_line() -> None:
    assert reasons_text([RevocationReason.PASSWORD_CHANGED, RevocationReason.ROLE_CHANGED]) == (
        "password changed, role changed"
    )
    assert reasons_text([RevocationReason.LOGOUT]) == "logout"


def test_a_revocation_survives_the_bus_and_refuses_an_unknown_kind() -> None:
    revocation = Revocation("sid", "s1", "logout", 1.5, 2.5)
    assert Revocation.from_dict(revocation.to_dict()) == revocation
    with pytest.raises(ValueError, match="unknown revocation kind 'everything'"):
        Revocation.from_dict({**revocation.to_dict(), "kind": "everything"})


def _principal(issued_at: float, device_ids: frozenset[str] | None = None) -> Principal:
    return Principal(
        user_id=7,
        role="client",
        actions=frozenset(),
        scope=Scope(device_ids=device_ids),
        jti="j1",
        sid="s1",
        issued_at=issued_at,
        expires_at=issued_at + 60,
    )


def test_what_a_revocation_covers() -> None:
    early, late = _principal(10.0, frozenset({"d1"})), _principal(30.0, frozenset({"d1"}))
    assert Revocation("jti", "j1", "r", 20.0, 90.0).covers(late)
    assert not Revocation("jti", "j2", "r", 20.0, 90.0).covers(early)
    assert Revocation("sid", "s1", "r", 20.0, 90.0).covers(late)
    assert Revocation("user", "7", "r", 20.0, 90.0).covers(early)
    assert not Revocation("user", "7", "r", 20.0, 90.0).covers(late)
    assert Revocation("device", "d1", "r", 20.0, 90.0).covers(early)
    assert not Revocation("device", "d1", "r", 20.0, 90.0).covers(_principal(10.0))
