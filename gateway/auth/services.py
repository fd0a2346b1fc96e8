"""Builds the stores and auth services that ``gateway serve`` and the admin commands share.

One builder so that a new setting reaches both faces at once (the admin commands once missed
``mint_max_ttl`` when they were wired by hand).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from gateway.auth.login import AuthService
from gateway.auth.passwords import Passwords
from gateway.auth.revocation import RevocationView
from gateway.auth.revoker import Revoker
from gateway.auth.throttle import LoginThrottle
from gateway.auth.tokens import KeySet, TokenCodec
from gateway.bus.control import Control
from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.store.db import Pool
from gateway.store.devices import DeviceStore
from gateway.store.sessions import RevocationStore, SessionStore
from gateway.store.users import UserStore


@dataclass(slots=True)
class AuthParts:
    users: UserStore
    sessions: SessionStore
    devices: DeviceStore
    view: RevocationView
    revoker: Revoker
    passwords: Passwords
    auth: AuthService


def build_auth(
    settings: Settings,
    *,
    pool: Pool,
    keys: KeySet,
    control: Control,
    metrics: Metrics,
    throttle: LoginThrottle,
    revoke_wait: float,
    stack: contextlib.AsyncExitStack,
) -> AuthParts:
    """The password pool is closed by ``stack``; what differs between the faces is passed in."""
    users = UserStore(pool)
    sessions = SessionStore(pool)
    devices = DeviceStore(pool)
    view = RevocationView()
    revoker = Revoker(
        RevocationStore(pool),
        view,
        control,
        wait=revoke_wait,
        reconcile_interval=settings.reconcile_interval,
        metrics=metrics,
    )
    passwords = Passwords(
        settings.argon2_time_cost,
        settings.argon2_memory_kib,
        settings.argon2_parallelism,
        settings.hash_workers,
    )
    stack.callback(passwords.close)
    auth = AuthService(
        users=users,
        sessions=sessions,
        devices=devices,
        codec=TokenCodec(keys, settings.jwt_issuer, settings.jwt_leeway),
        passwords=passwords,
        throttle=throttle,
        view=view,
        revoker=revoker,
        access_ttl=settings.access_ttl,
        refresh_ttl=settings.refresh_ttl,
        mint_max_ttl=settings.mint_max_ttl,
        metrics=metrics,
    )
    return AuthParts(users, sessions, devices, view, revoker, passwords, auth)
