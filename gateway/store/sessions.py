"""The repository of login sessions (refresh families), refresh tokens and revocations."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from gateway.clock import at
from gateway.store.db import Pool
from gateway.types import Revocation


class Consumed(enum.Enum):
    FRESH = "fresh"
    REUSED = "reused"
    UNKNOWN = "unknown"


class SessionStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def open(self, sid: str, user_id: int) -> None:
        await self.pool.execute(
            "INSERT INTO login_sessions (id, user_id) VALUES ($1, $2)", uuid.UUID(sid), user_id
        )

    async def add_refresh(self, jti: str, sid: str, expires_at: float) -> None:
        await self.pool.execute(
            "INSERT INTO refresh_tokens (jti, session_id, expires_at) VALUES ($1, $2, $3)",
            uuid.UUID(jti),
            uuid.UUID(sid),
            at(expires_at),
        )

    async def consume_refresh(self, jti: str) -> Consumed:
        """Mark a refresh token used, atomically: exactly one caller ever sees FRESH."""
        try:
            key = uuid.UUID(jti)
        except ValueError:
            return Consumed.UNKNOWN
        async with self.pool.acquire() as conn:
            consumed = await conn.fetchval(
                """UPDATE refresh_tokens SET consumed_at = now()
                   WHERE jti = $1 AND consumed_at IS NULL RETURNING 1""",
                key,
            )
            if consumed:
                return Consumed.FRESH
            seen = await conn.fetchval("SELECT 1 FROM refresh_tokens WHERE jti = $1", key)
        return Consumed.REUSED if seen else Consumed.UNKNOWN

    async def is_refresh_known(self, jti: str) -> bool:
        try:
            key = uuid.UUID(jti)
        except ValueError:
            return False
        return bool(await self.pool.fetchval("SELECT 1 FROM refresh_tokens WHERE jti = $1", key))

    async def close(self, sid: str) -> None:
        await self.pool.execute(
            "UPDATE login_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
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
