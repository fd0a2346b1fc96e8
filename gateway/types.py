"""Domain types and enums that every floor shares.

Users, networks, devices, notifications, commands, the Principal and its Scope, revocations and
their reasons, WebSocket close codes. They live on the ground floor so that the store, the use
cases and both edges can name them without importing each other. Plain frozen dataclasses: no
I/O, no framework.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeVar

from gateway.clock import iso
from gateway.errors import GatewayError, TokenExpired, TokenRevoked

# -- rights --------------------------------------------------------------------------------


class Action(enum.IntEnum):
    """DeviceHive's actions with their numeric ids (as carried in the ``actions`` claim)."""

    GetNetwork = 2
    GetDevice = 3
    GetDeviceNotification = 4
    GetDeviceCommand = 5
    RegisterDevice = 6
    CreateDeviceCommand = 7
    UpdateDeviceCommand = 8
    CreateDeviceNotification = 9
    GetCurrentUser = 10
    UpdateCurrentUser = 11
    ManageUser = 12
    ManageConfiguration = 13
    ManageNetwork = 14
    ManageToken = 15
    ManagePlugin = 16
    GetDeviceType = 17
    ManageDeviceType = 18


WILDCARD = "*"
"""In a token's networkIds/deviceIds: every network (or device) the owner may see."""

T = TypeVar("T")


def action_mask(actions: Iterable[int]) -> int:
    mask = 0
    for action in actions:
        mask |= 1 << int(action)
    return mask


_shared_mask = functools.lru_cache(maxsize=1024)(action_mask)  # one int per action set


@dataclass(frozen=True, slots=True)
class Topic:
    """What a plugin's subscriptions may cover (None: no narrowing), and which kinds."""

    network_ids: frozenset[int] | None = None
    device_type_ids: frozenset[int] | None = None
    names: frozenset[str] | None = None
    notifications: bool = True
    commands: bool = False


@dataclass(frozen=True, slots=True)
class Scope:
    """A token's reach: ``None`` means every network (or device) the owner may see."""

    network_ids: frozenset[int] | None = None
    device_ids: frozenset[str] | None = None
    plugin_id: int | None = None
    """Set for a plugin's token: it may only subscribe, within ``topic``."""
    topic: Topic | None = None

    def allows(self, device_id: str, network_id: int) -> bool:
        return (self.device_ids is None or device_id in self.device_ids) and (
            self.network_ids is None or network_id in self.network_ids
        )

    def claims(self) -> tuple[list[int] | list[str], list[str]]:
        networks: list[int] | list[str] = (
            [WILDCARD] if self.network_ids is None else sorted(self.network_ids)
        )
        devices = [WILDCARD] if self.device_ids is None else sorted(self.device_ids)
        return networks, devices

    def narrowed_to(self, other: Scope) -> Scope:
        """The intersection of two scopes."""
        return Scope(
            network_ids=_intersect(self.network_ids, other.network_ids),
            device_ids=_intersect(self.device_ids, other.device_ids),
            plugin_id=self.plugin_id if self.plugin_id is not None else other.plugin_id,
            topic=self.topic or other.topic,
        )


def _intersect(a: frozenset[T] | None, b: frozenset[T] | None) -> frozenset[T] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and what the presented token lets them do.

    Decoded from a token once; every later check is a bit test and a few set look-ups, which is
    what keeps per-message authorization cheap."""

    user_id: int
    role: str
    actions: frozenset[Action]
    scope: Scope
    jti: str
    sid: str
    issued_at: float
    expires_at: float
    parents: tuple[str, ...] = ()
    """The login sessions this token was minted from (outermost first): it dies with any."""
    mask: int = field(default=0, compare=False)
    is_admin: bool = field(default=False, init=False, compare=False)  # from role, once

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", _shared_mask(self.actions))
        object.__setattr__(self, "is_admin", self.role == "admin")

    @property
    def families(self) -> tuple[str, ...]:
        """Every login session whose revocation ends this token."""
        return (*self.parents, self.sid) if self.parents else (self.sid,)

    def may(self, action: Action) -> bool:
        return bool(self.mask >> action & 1)

    def may_reach(self, device_id: str, network_id: int, memberships: frozenset[int]) -> bool:
        """The token's device and network lists and, for clients, current memberships."""
        if not self.scope.allows(device_id, network_id):
            return False
        return self.is_admin or network_id in memberships


# -- revocations ---------------------------------------------------------------------------

RevocationKind = Literal["jti", "sid", "user", "device"]
REVOCATION_KINDS: tuple[RevocationKind, ...] = ("jti", "sid", "user", "device")


class RevocationReason(enum.StrEnum):
    """Why tokens were revoked: stored with the revocation and sent in the 4003 close reason."""

    LOGOUT = "logout"
    LOGOUT_EVERYWHERE = "logout everywhere"
    REFRESH_REUSE = "refresh token reuse"
    BY_ADMINISTRATOR = "revoked by an administrator"
    PASSWORD_CHANGED = "password changed"
    ROLE_CHANGED = "role changed"
    USER_DISABLED = "user disabled"
    USER_DELETED = "user deleted"
    PLUGIN_DELETED = "plugin deleted"
    PLUGIN_NOT_REGISTERED = "plugin not registered"


def reasons_text(reasons: Iterable[RevocationReason]) -> str:
    """Several reasons of one revocation as stored and shown: ``password changed, role changed``."""
    return ", ".join(reasons)


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: RevocationKind
    subject: str
    reason: str
    """One or more ``RevocationReason`` values (``reasons_text``); free text from older rows."""
    revoked_at: float
    expires_at: float

    def covers(self, principal: Principal) -> bool:
        """Whether this revocation ends the rights of a token."""
        if self.kind == "jti":
            return principal.jti == self.subject
        if self.kind == "sid":
            return principal.sid == self.subject or self.subject in principal.parents
        if self.kind == "user":
            return str(principal.user_id) == self.subject and principal.issued_at < self.revoked_at
        devices = principal.scope.device_ids
        return (
            devices is not None
            and self.subject in devices
            and principal.issued_at < self.revoked_at
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Revocation:
        kind = data["kind"]
        if kind not in REVOCATION_KINDS:
            raise ValueError(f"unknown revocation kind {kind!r}")
        return cls(
            kind=kind,
            subject=str(data["subject"]),
            reason=str(data["reason"]),
            revoked_at=float(data["revoked_at"]),
            expires_at=float(data["expires_at"]),
        )


# -- users, networks, devices --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    email: str
    role: str
    status: str
    password_hash: str
    created_at: datetime
    updated_at: datetime
    network_ids: tuple[int, ...]

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class Network:
    id: int
    name: str
    description: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description}


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    name: str
    data: Any
    network_id: int
    device_type_id: int | None
    is_blocked: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "data": self.data,
            "networkId": self.network_id,
            "deviceTypeId": self.device_type_id,
            "isBlocked": self.is_blocked,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Device:
        return cls(
            id=data["id"],
            name=data["name"],
            data=data.get("data"),
            network_id=data["networkId"],
            device_type_id=data.get("deviceTypeId"),
            is_blocked=data.get("isBlocked", False),
        )


# -- notifications and commands ------------------------------------------------------------

NOTIFICATION = "notification"
COMMAND = "command"


# Items are never changed once made (a command's new state is a new object), yet not frozen:
# a frozen dataclass costs three times as much to build, and one is built per message.
@dataclass(slots=True)
class Notification:
    id: int
    device_id: str
    network_id: int
    device_type_id: int | None
    notification: str
    parameters: Any
    timestamp: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "deviceId": self.device_id,
            "networkId": self.network_id,
            "deviceTypeId": self.device_type_id,
            "notification": self.notification,
            "parameters": self.parameters,
            "timestamp": iso(self.timestamp),
        }

    @property
    def name(self) -> str:
        return self.notification


@dataclass(slots=True)
class Command:
    id: int
    device_id: str
    network_id: int
    device_type_id: int | None
    user_id: int | None
    command: str
    parameters: Any
    lifetime: int | None
    status: str | None
    result: Any
    timestamp: float
    last_updated: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "deviceId": self.device_id,
            "networkId": self.network_id,
            "deviceTypeId": self.device_type_id,
            "userId": self.user_id,
            "command": self.command,
            "parameters": self.parameters,
            "lifetime": self.lifetime,
            "timestamp": iso(self.timestamp),
            "lastUpdated": iso(self.last_updated),
            "status": self.status,
            "result": self.result,
        }

    @property
    def name(self) -> str:
        return self.command

    def updated(self, status: str | None, result: Any, now: float) -> Command:
        return replace(self, status=status, result=result, last_updated=now)


# -- WebSocket close codes -----------------------------------------------------------------


class CloseCode(enum.IntEnum):
    """Every code the server closes a WebSocket with. 4000-range where RFC 6455 has none."""

    NORMAL_CLOSURE = 1000
    """The client closed the socket; the server answers its close frame with this code."""
    GOING_AWAY = 1001
    """The server is shutting down; reconnect to another instance."""
    PROTOCOL_ERROR = 1002
    """A frame broke RFC 6455 (bad opcode, unmasked, fragmented control frame...)."""
    INVALID_FRAME_PAYLOAD_DATA = 1007
    """A text frame was not valid UTF-8 (a binary frame with bad JSON gets a 400 instead)."""
    POLICY_VIOLATION = 1008
    """Too many consecutive error replies."""
    MESSAGE_TOO_BIG = 1009
    """An inbound message exceeded the size limit."""
    INTERNAL_ERROR = 1011
    """A replay failed after its subscribe was answered (reported in the server log)."""
    AUTH_TIMEOUT = 4000
    """Not authenticated within the authentication timeout."""
    INVALID_TOKEN = 4001
    """The token on the upgrade request was invalid."""
    TOKEN_EXPIRED = 4002
    """The token expired and no fresh one came within the grace window."""
    TOKEN_REVOKED = 4003
    """The token was revoked (logout, user disabled/deleted, role or password changed)."""
    SESSION_TERMINATED = 4004
    """An administrator ended the session (DELETE /v1/sessions/{id})."""
    SLOW_CONSUMER = 4008
    """The client did not read fast enough; its outbound queue hit the limit."""
    RATE_LIMITED = 4029
    """The client kept sending above its message rate after being told to slow down."""


_CLOSE_FOR: dict[type[GatewayError], CloseCode] = {
    TokenExpired: CloseCode.TOKEN_EXPIRED,
    TokenRevoked: CloseCode.TOKEN_REVOKED,
}


def close_code_for(error: GatewayError) -> CloseCode:
    """The close code for a token refused on the upgrade request, by the kind of the error."""
    for kind, code in _CLOSE_FOR.items():
        if isinstance(error, kind):
            return code
    return CloseCode.INVALID_TOKEN
