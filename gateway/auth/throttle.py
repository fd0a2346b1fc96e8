"""Login throttling that a stranger cannot turn against a user.

Failures are counted per (account, client address) and per client address, never per account
alone: guessing at a victim's account from one address throttles that address (for that
account, and past a higher limit for every account), while the victim, logging in from an
address that has not been failing, is never refused because of it. This is the "lockout by
source rather than by account" design of the OWASP Authentication Cheat Sheet, with the rate
limiting of NIST SP 800-63B section 5.2.2.

Each attempt is counted before its password is checked (one atomic reservation), so a burst of
concurrent guesses cannot all pass before the first failure is counted; a correct password
uncounts it and forgives the (account, address) pair. With Redis the counts are shared by every
instance (one round trip per attempt, plus one after a success); without Redis, or while Redis is
unreachable, each instance counts for itself.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import ipaddress
import logging
import unicodedata
from dataclasses import dataclass

from redis.exceptions import RedisError

from gateway.bus.counts import Counts, MemoryCounts
from gateway.errors import TooManyRequests

log = logging.getLogger(__name__)

TOO_MANY = "Too many failed logins; try again later"


class Outcome(enum.Enum):
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    VOID = "void"
    """Neither: the check could not run (a dependency failed) or the account is disabled."""


@dataclass(frozen=True, slots=True)
class Ticket:
    pair: str
    address: str
    counts: Counts


def source(address: str) -> str:
    """What failures are counted per: an IPv6 client is its /64, which one subscriber holds
    whole (counted per address, each of its 2**64 addresses would start afresh); an
    IPv4-mapped IPv6 address is the IPv4 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode(errors="surrogatepass")).hexdigest()
    return f"{kind}:{digest[:32]}"


class LoginThrottle:
    def __init__(
        self,
        per_account: int,
        per_address: int,
        window: float,
        shared: Counts | None = None,
        local: MemoryCounts | None = None,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window = window
        self.shared = shared
        self.local = local or MemoryCounts()
        self._pending: dict[str, int] = {}
        self._settled: dict[str, asyncio.Event] = {}
        self._shared_down = False

    async def admit(self, account: str, address: str) -> Ticket:
        """Reserve one password check, or raise 429 with the wait.

        When the limit is full only because of this instance's checks still in flight, wait
        for one to settle instead of refusing: a burst of right passwords still gets in."""
        address = source(address)
        # One account whatever the Unicode form its name is typed in (the store's lookup).
        pair = _key("p", unicodedata.normalize("NFC", account), address)
        where = _key("a", address)
        while True:
            counts, wait = await self._reserve(pair, where)
            if wait is None:
                for key in (pair, where):
                    self._pending[key] = self._pending.get(key, 0) + 1
                return Ticket(pair, where, counts)
            busy = next((key for key in (pair, where) if self._pending.get(key)), None)
            if busy is None:
                raise TooManyRequests(TOO_MANY, wait)
            await self._settled.setdefault(busy, asyncio.Event()).wait()

    async def _reserve(self, pair: str, where: str) -> tuple[Counts, float | None]:
        if self.shared is not None:
            try:
                wait = await self.shared.reserve(
                    pair, where, self.per_account, self.per_address, self.window
                )
            except (OSError, TimeoutError, ConnectionError, RedisError) as exc:
                if not self._shared_down:
                    log.warning("login counts unreachable, counting on this instance: %s", exc)
                    self._shared_down = True
            else:
                if self._shared_down:
                    log.info("login counts reachable again")
                    self._shared_down = False
                return self.shared, wait
        wait = await self.local.reserve(
            pair, where, self.per_account, self.per_address, self.window
        )
        return self.local, wait

    async def settle(self, ticket: Ticket, outcome: Outcome) -> None:
        """A failure stays counted; a success or a void check is uncounted."""
        try:
            if outcome is not Outcome.FAILED:
                await ticket.counts.release(
                    ticket.pair, ticket.address, forgive=outcome is Outcome.SUCCEEDED
                )
        except (OSError, TimeoutError, ConnectionError, RedisError) as exc:
            log.warning("login counts unreachable, a reservation expires with its window: %s", exc)
        finally:
            for key in (ticket.pair, ticket.address):
                left = self._pending.pop(key, 0) - 1
                if left > 0:
                    self._pending[key] = left
                settled = self._settled.pop(key, None)
                if settled is not None:
                    settled.set()
