"""The container of wired services that request handlers reach through the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.auth.accounts import AccountService
from gateway.auth.revocation import RevocationView
from gateway.auth.revoker import Revoker
from gateway.auth.service import AuthService
from gateway.auth.tokens import KeySet
from gateway.bus.base import Bus
from gateway.bus.control import Control
from gateway.config import Settings
from gateway.store.db import Pool
from gateway.store.devices import DeviceStore
from gateway.store.users import UserStore

if TYPE_CHECKING:
    from gateway.realtime.hub import Hub
    from gateway.realtime.registry import Registry
    from gateway.realtime.service import DeviceService


@dataclass(slots=True)
class Services:
    settings: Settings
    pool: Pool
    bus: Bus
    control: Control
    keys: KeySet
    users: UserStore
    devices: DeviceStore
    view: RevocationView
    revoker: Revoker
    auth: AuthService
    accounts: AccountService
    registry: Registry
    hub: Hub
    device_service: DeviceService
