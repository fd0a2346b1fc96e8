"""The session repository (login sessions, refresh tokens) and the revocation repository."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from gateway.store.db import Pool
from gateway.store.sessions import Consumed, Guard, RevocationStore, SessionStore
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


def _guard(jti: str, user_id: int = 1, chain: tuple[str, ...] = ()) -> Guard:
    return Guard(user_id, chain, time.time() - 60, jti)


async def test_a_refresh_token_is_consumed_once_then_seen_as_reused(pool: Pool) -> None:
    sessions = SessionStore(pool)
    _, jti = await _login(sessions, await _user(pool))
    assert (await sessions.peek_refresh(jti, _guard(jti))).state is Consumed.FRESH
    assert (await sessions.consume_refresh(jti)).state is Consumed.FRESH
    assert (await sessions.consume_refresh(jti)).state is Consumed.REUSED
    assert (await sessions.peek_refresh(jti, _guard(jti))).state is Consumed.REUSED


async def test_an_unknown_or_malformed_refresh_token_is_unknown(pool: Pool) -> None:
    sessions = SessionStore(pool)
    for jti in (str(uuid.uuid4()), "not-a-uuid"):
        assert (await sessions.consume_refresh(jti)).state is Consumed.UNKNOWN
        assert (await sessions.peek_refresh(jti, _guard(jti))).state is Consumed.UNKNOWN


async def test_concurrent_consumers_of_one_token_see_fresh_exactly_once(pool: Pool) -> None:
    sessions = SessionStore(pool)
    _, jti = await _login(sessions, await _user(pool))
    results = await asyncio.gather(*(sessions.consume_refresh(jti) for _ in range(8)))
    assert sorted(result.state.value for result in results) == ["fresh"] + ["reused"] * 7


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
    assert (await sessions.peek_refresh(live, _guard(live))).state is Consumed.FRESH
    assert (await sessions.peek_refresh(expired, _guard(expired))).state is Consumed.UNKNOWN


async def test_a_login_opens_only_while_the_account_is_as_it_was_read(pool: Pool) -> None:
    sessions, revocations = SessionStore(pool), RevocationStore(pool)
    user = await _user(pool)
    since = time.time()
    opened = await sessions.open_login(
        str(uuid.uuid4()), user, password_hash="h", role="client", since=since
    )
    assert opened
    for password_hash, role in (("changed", "client"), ("h", "admin")):
        assert not await sessions.open_login(
            str(uuid.uuid4()), user, password_hash=password_hash, role=role, since=since
        )
    await revocations.add(_revocation("user", str(user), 60))
    assert not await sessions.open_login(
        str(uuid.uuid4()), user, password_hash="h", role="client", since=since
    )
    later = time.time() + 1
    assert await sessions.open_login(
        str(uuid.uuid4()), user, password_hash="h", role="client", since=later
    )


async def test_a_guarded_refresh_is_recorded_only_if_nothing_revoked_it(pool: Pool) -> None:
    sessions, revocations = SessionStore(pool), RevocationStore(pool)
    user = await _user(pool)
    sid, jti = await _login(sessions, user)
    guard = Guard(user, ("parent", sid), time.time() - 1, jti)
    assert await sessions.add_refresh(str(uuid.uuid4()), sid, time.time() + 60, guard)
    assert (await sessions.peek_refresh(jti, guard)).live
    for kind, subject in (("jti", jti), ("sid", "parent"), ("user", str(user))):
        await pool.execute("TRUNCATE revocations")
        await revocations.add(_revocation(kind, subject, 60))
        assert not await sessions.add_refresh(str(uuid.uuid4()), sid, time.time() + 60, guard)
        assert not (await sessions.peek_refresh(jti, guard)).live


async def test_a_minted_family_ends_with_its_parent_and_closes_with_it(pool: Pool) -> None:
    sessions = SessionStore(pool)
    user = await _user(pool)
    parent, _ = await _login(sessions, user)
    parent_ends = await sessions.family_ends(parent)
    assert parent_ends is not None and abs(parent_ends - (time.time() + 60)) < 5
    child = str(uuid.uuid4())
    guard = Guard(user, (parent,), time.time() - 1)
    ends = await sessions.open_minted(
        child, user, ends=time.time() + 3600, parent=parent, guard=guard
    )
    assert ends is not None and abs(ends - parent_ends) < 0.01, "capped at the parent's end"
    assert await sessions.family_ends(child) == ends
    await sessions.close(parent)
    assert await sessions.family_ends(child) is None, "closed with its parent"
    assert await sessions.family_ends(parent) is None
    orphan = await sessions.open_minted(
        str(uuid.uuid4()), user, ends=time.time() + 30, parent=parent, guard=guard
    )
    assert orphan is None


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
