"""The repository of login sessions (refresh families), refresh tokens and revocations."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.clock import at
from gateway.store.db import Pool
from gateway.types import Principal, Revocation


class Consumed(enum.Enum):
    FRESH = "fresh"
    REUSED = "reused"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Guard:
    """What must not have been revoked for a new token to be recorded: its family chain (``sid``
    revocations), its user (a cut-off after ``since``: the presented token's ``iat``, or the read
    of a login) and the presented token (its ``jti``, its devices). Checked in the statement that
    records the new token, so a revocation recorded while the password was hashed, or on another
    instance whose message has not arrived, is never missed."""

    user_id: int
    chain: tuple[str, ...]
    since: float
    jti: str | None = None
    """The presented token, when one is: revoked by its ``jti`` on another instance, it may not
    yet be in this instance's view."""
    devices: frozenset[str] = frozenset()
    """The presented token's device list: a device revocation after ``since`` covers it."""

    @classmethod
    def presented(cls, user_id: int, token: Principal) -> Guard:
        """For a token made from ``token``: nothing that covers ``token`` may be recorded."""
        devices = token.scope.device_ids or frozenset()
        return cls(user_id, token.families, token.issued_at, token.jti, devices)


@dataclass(frozen=True, slots=True)
class Refresh:
    """A presented refresh token as PostgreSQL knows it."""

    state: Consumed
    family_ends: float | None = None
    live: bool = True


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class SessionStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def open(self, sid: str, user_id: int) -> None:
        await self.pool.execute(
            "INSERT INTO login_sessions (id, user_id) VALUES ($1, $2)", uuid.UUID(sid), user_id
        )

    async def open_login(
        self, sid: str, user_id: int, *, password_hash: str, role: str, since: float
    ) -> bool:
        """Open a login's family only if the account is still as the password check saw it
        (same hash, role, active) and no cut-off of the user was recorded after ``since``."""
        opened = await self.pool.fetchval(
            """INSERT INTO login_sessions (id, user_id)
                SELECT $1, u.id FROM users u
                WHERE u.id = $2 AND u.status = 'active' AND u.password_hash = $3
                  AND u.role = $4 AND NOT EXISTS (SELECT 1 FROM revocations r
                      WHERE (r.kind = 'sid' AND r.subject = ANY($5::text[]))
                         OR (r.kind = 'user' AND r.subject = $6::text AND r.revoked_at > $7)
                         OR (r.kind = 'jti' AND r.subject = $8::text)
                         OR (r.kind = 'device' AND r.subject = ANY($9::text[])
                             AND r.revoked_at > $7))
                RETURNING 1""",
            uuid.UUID(sid),
            user_id,
            password_hash,
            role,
            [],
            str(user_id),
            at(since),
            None,
            [],
        )
        return bool(opened)

    async def family_ends(self, sid: str) -> float | None:
        """When a live family ends: its hard end, else its current refresh token's expiry
        (None when the family is closed, revoked-and-closed, or has no live refresh token)."""
        key = _uuid(sid)
        if key is None:
            return None
        value = await self.pool.fetchval(
            """SELECT COALESCE(ls.expires_at,
                   (SELECT max(rt.expires_at) FROM refresh_tokens rt
                    WHERE rt.session_id = ls.id AND rt.consumed_at IS NULL))
               FROM login_sessions ls WHERE ls.id = $1 AND ls.revoked_at IS NULL""",
            key,
        )
        return _epoch(value)

    async def open_minted(
        self, sid: str, user_id: int, *, ends: float, parent: str | None, guard: Guard
    ) -> float | None:
        """Open a minted family ending at ``ends`` (never after its parent's end); its end,
        or None when the user or any family of the chain was revoked meanwhile."""
        value = await self.pool.fetchval(
            """INSERT INTO login_sessions (id, user_id, parent_id, expires_at)
                SELECT $1, u.id, $3::uuid, LEAST($4::timestamptz, p.ends)
                FROM users u
                LEFT JOIN LATERAL (
                    SELECT COALESCE(ls.expires_at,
                        (SELECT max(rt.expires_at) FROM refresh_tokens rt
                         WHERE rt.session_id = ls.id AND rt.consumed_at IS NULL)) AS ends
                    FROM login_sessions ls WHERE ls.id = $3::uuid AND ls.revoked_at IS NULL
                ) p ON true
                WHERE u.id = $2 AND u.status = 'active'
                  AND ($3::uuid IS NULL OR p.ends > now())
                  AND NOT EXISTS (SELECT 1 FROM revocations r
                      WHERE (r.kind = 'sid' AND r.subject = ANY($5::text[]))
                         OR (r.kind = 'user' AND r.subject = $6::text AND r.revoked_at > $7)
                         OR (r.kind = 'jti' AND r.subject = $8::text)
                         OR (r.kind = 'device' AND r.subject = ANY($9::text[])
                             AND r.revoked_at > $7))
                RETURNING expires_at""",
            uuid.UUID(sid),
            user_id,
            None if parent is None else uuid.UUID(parent),
            at(ends),
            list(guard.chain),
            str(guard.user_id),
            at(guard.since),
            guard.jti,
            list(guard.devices),
        )
        return _epoch(value)

    async def add_refresh(
        self, jti: str, sid: str, expires_at: float, guard: Guard | None = None
    ) -> bool:
        """Record a refresh token; with a guard, only if nothing revoked its family or user
        since the rights were read (False then)."""
        if guard is None:
            await self.pool.execute(
                "INSERT INTO refresh_tokens (jti, session_id, expires_at) VALUES ($1, $2, $3)",
                uuid.UUID(jti),
                uuid.UUID(sid),
                at(expires_at),
            )
            return True
        added = await self.pool.fetchval(
            """INSERT INTO refresh_tokens (jti, session_id, expires_at)
                SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM revocations r
                      WHERE (r.kind = 'sid' AND r.subject = ANY($4::text[]))
                         OR (r.kind = 'user' AND r.subject = $5::text AND r.revoked_at > $6)
                         OR (r.kind = 'jti' AND r.subject = $7::text)
                         OR (r.kind = 'device' AND r.subject = ANY($8::text[])
                             AND r.revoked_at > $6))
                RETURNING 1""",
            uuid.UUID(jti),
            uuid.UUID(sid),
            at(expires_at),
            list(guard.chain),
            str(guard.user_id),
            at(guard.since),
            guard.jti,
            list(guard.devices),
        )
        return bool(added)

    async def consume_refresh(self, jti: str) -> Refresh:
        """Mark a refresh token used, atomically: exactly one caller ever sees FRESH."""
        key = _uuid(jti)
        if key is None:
            return Refresh(Consumed.UNKNOWN)
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """UPDATE refresh_tokens rt SET consumed_at = now()
                   WHERE rt.jti = $1 AND rt.consumed_at IS NULL
                   RETURNING (SELECT ls.expires_at FROM login_sessions ls
                              WHERE ls.id = rt.session_id) AS family_ends""",
                key,
            )
            if row is not None:
                return Refresh(Consumed.FRESH, _epoch(row["family_ends"]))
            seen = await conn.fetchval("SELECT 1 FROM refresh_tokens WHERE jti = $1", key)
        return Refresh(Consumed.REUSED if seen else Consumed.UNKNOWN)

    async def peek_refresh(self, jti: str, guard: Guard) -> Refresh:
        """A refresh token's state without consuming it, and whether its family and user are
        still unrevoked in PostgreSQL (one round trip)."""
        key = _uuid(jti)
        if key is None:
            return Refresh(Consumed.UNKNOWN)
        row = await self.pool.fetchrow(
            """SELECT rt.consumed_at IS NOT NULL AS consumed,
                      NOT EXISTS (SELECT 1 FROM revocations r
                          WHERE (r.kind = 'sid' AND r.subject = ANY($2::text[]))
                             OR (r.kind = 'user' AND r.subject = $3::text
                                 AND r.revoked_at > $4)
                             OR (r.kind = 'jti' AND r.subject = $5::text)
                         OR (r.kind = 'device' AND r.subject = ANY($6::text[])
                             AND r.revoked_at > $4)) AS live
                FROM refresh_tokens rt WHERE rt.jti = $1""",
            key,
            list(guard.chain),
            str(guard.user_id),
            at(guard.since),
            guard.jti,
            list(guard.devices),
        )
        if row is None:
            return Refresh(Consumed.UNKNOWN)
        state = Consumed.REUSED if row["consumed"] else Consumed.FRESH
        return Refresh(state, live=bool(row["live"]))

    async def close(self, sid: str) -> None:
        """Mark a family closed, with the families minted from it (bookkeeping: the ``sid``
        revocation and the chain claim are what every check reads)."""
        await self.pool.execute(
            """WITH RECURSIVE family AS (
                   SELECT id FROM login_sessions WHERE id = $1
                   UNION SELECT ls.id FROM login_sessions ls JOIN family f ON ls.parent_id = f.id)
               UPDATE login_sessions SET revoked_at = now()
               WHERE id IN (SELECT id FROM family) AND revoked_at IS NULL""",
            uuid.UUID(sid),
        )

    async def close_all(self, user_id: int) -> None:
        await self.pool.execute(
            """UPDATE login_sessions SET revoked_at = now()
               WHERE user_id = $1 AND revoked_at IS NULL""",
            user_id,
        )

    async def purge_expired(self) -> int:
        result = await self.pool.execute("DELETE FROM refresh_tokens WHERE expires_at < now()")
        return int(result.split()[-1])


class RevocationStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def add(self, *revocations: Revocation) -> None:
        """All in one statement: one round trip before the fan-out can start."""
        await self.pool.execute(
            """INSERT INTO revocations (kind, subject, reason, revoked_at, expires_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                                    $5::timestamptz[])""",
            [r.kind for r in revocations],
            [r.subject for r in revocations],
            [r.reason for r in revocations],
            [at(r.revoked_at) for r in revocations],
            [at(r.expires_at) for r in revocations],
        )

    async def recorded_since(self, since: datetime | None) -> tuple[list[Revocation], datetime]:
        """Live revocations recorded after ``since`` (all when None), and the database's clock."""
        async with self.pool.acquire() as conn:
            now: datetime = await conn.fetchval("SELECT clock_timestamp()")
            rows = await conn.fetch(
                """SELECT kind, subject, reason, revoked_at, expires_at FROM revocations
                   WHERE expires_at > now() AND ($1::timestamptz IS NULL OR recorded_at > $1)""",
                since,
            )
        return [
            Revocation(
                kind=row["kind"],
                subject=row["subject"],
                reason=row["reason"],
                revoked_at=row["revoked_at"].timestamp(),
                expires_at=row["expires_at"].timestamp(),
            )
            for row in rows
        ], now

    async def purge_expired(self) -> int:
        result = await self.pool.execute("DELETE FROM revocations WHERE expires_at < now()")
        return int(result.split()[-1])
