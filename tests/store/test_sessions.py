"""The session repository (login sessions, refresh tokens) and the revocation repository."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from gateway.store.db import Pool
from gateway.store.sessions import Consumed, RevocationStore, SessionStore
from gateway.store.users import UserStore
from gateway.types import Revocation


async def _user(pool: Pool, email: str = "a@example.com") -> int:
    user = await UserStore(pool).create(name="a", email=email, password_hash="h", role="client")
    return user.id


async def _login(sessions: SessionStore, user_id: int) -> tuple[str, str]:
    sid, jti = str(uuid.uuid4()), str(uuid.uuid4())
    await sessions.open(sid, user_id)
    await sessions.add_refresh(jti, sid, time.time() + 60)
    return sid, jti


async def test_a_refresh_token_is_consumed_once_then_seen_as_reused(pool: Pool) -> None:
    sessions = SessionStore(pool)
    _, jti = await _login(sessions, await _user(pool))
    assert await sessions.is_refresh_known(jti)
    assert await sessions.consume_refresh(jti) is Consumed.FRESH
    assert await sessions.consume_refresh(jti) is Consumed.REUSED
    assert await sessions.is_refresh_known(jti)


async def test_an_unknown_or_malformed_refresh_token_is_unknown(pool: Pool) -> None:
    sessions = SessionStore(pool)
    assert await sessions.consume_refresh(str(uuid.uuid4())) is Consumed.UNKNOWN
    assert await sessions.consume_refresh("not-a-uuid") is Consumed.UNKNOWN
    assert not await sessions.is_refresh_known(str(uuid.uuid4()))
    assert not await sessions.is_refresh_known("not-a-uuid")


async def test_concurrent_consumers_of_one_token_see_fresh_exactly_once(pool: Pool) -> None:
    sessions = SessionStore(pool)
    _, jti = await _login(sessions, await _user(pool))
    results = await asyncio.gather(*(sessions.consume_refresh(jti) for _ in range(8)))
    assert sorted(result.value for result in results) == ["fresh"] + ["reused"] * 7


async def test_closing_marks_one_session_or_all_of_a_users(pool: Pool) -> None:
    sessions = SessionStore(pool)
    alice, bob = await _user(pool), await _user(pool, "b@example.com")
    first, _ = await _login(sessions, alice)
    second, _ = await _login(sessions, alice)
    bobs, _ = await _login(sessions, bob)
    await sessions.close(first)
    revoked = {
        str(row["id"])
        for row in await pool.fetch("SELECT id FROM login_sessions WHERE revoked_at IS NOT NULL")
    }
    assert revoked == {first}
    await sessions.close_all(alice)
    revoked = {
        str(row["id"])
        for row in await pool.fetch("SELECT id FROM login_sessions WHERE revoked_at IS NOT NULL")
    }
    assert revoked == {first, second}
    assert bobs not in revoked


async def test_purge_forgets_expired_refresh_tokens_only(pool: Pool) -> None:
    sessions = SessionStore(pool)
    user = await _user(pool)
    sid, live = await _login(sessions, user)
    expired = str(uuid.uuid4())
    await sessions.add_refresh(expired, sid, time.time() - 1)
    assert await sessions.purge_expired() == 1
    assert await sessions.is_refresh_known(live)
    assert not await sessions.is_refresh_known(expired)


def _revocation(kind: str, subject: str, expires_in: float) -> Revocation:
    now = time.time()
    return Revocation(
        kind=kind,  # type: ignore[arg-type]
        subject=subject,
        reason="logout",
        revoked_at=now,
        expires_at=now + expires_in,
    )


async def test_revocations_come_back_while_they_can_still_matter(pool: Pool) -> None:
    store = RevocationStore(pool)
    live = [_revocation("jti", "j1", 60), _revocation("user", "7", 60)]
    await store.add(*live, _revocation("sid", "gone", -1))
    found, now = await store.recorded_since(None)
    assert sorted((r.kind, r.subject, r.reason) for r in found) == [
        ("jti", "j1", "logout"),
        ("user", "7", "logout"),
    ]
    by_subject = {r.subject: r for r in found}
    for revocation in live:
        # timestamptz keeps microseconds: the times survive the round trip.
        assert abs(by_subject[revocation.subject].revoked_at - revocation.revoked_at) < 1e-5
        assert abs(by_subject[revocation.subject].expires_at - revocation.expires_at) < 1e-5
    later, _ = await store.recorded_since(now)
    assert later == []
    await store.add(_revocation("device", "d1", 60))
    newer, _ = await store.recorded_since(now - timedelta(microseconds=1))
    assert [(r.kind, r.subject) for r in newer] == [("device", "d1")]


async def test_purge_forgets_expired_revocations_only(pool: Pool) -> None:
    store = RevocationStore(pool)
    await store.add(_revocation("jti", "live", 60), _revocation("jti", "gone", -1))
    assert await store.purge_expired() == 1
    assert await store.purge_expired() == 0
    found, _ = await store.recorded_since(None)
    assert [r.subject for r in found] == ["live"]
