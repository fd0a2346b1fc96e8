"""The DeviceHive action set, roles, the Principal and the per-message check.

The Principal is decoded from a token once; every later check is a bit test and a few set
look-ups, which is what keeps per-message authorization cheap.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.errors import Unprocessable


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


ALL_ACTIONS: frozenset[Action] = frozenset(Action)

CLIENT_ACTIONS: frozenset[Action] = frozenset(
    {
        Action.GetNetwork,
        Action.GetDevice,
        Action.GetDeviceNotification,
        Action.GetDeviceCommand,
        Action.RegisterDevice,
        Action.CreateDeviceCommand,
        Action.UpdateDeviceCommand,
        Action.CreateDeviceNotification,
        Action.GetCurrentUser,
        Action.UpdateCurrentUser,
        Action.ManageToken,
        Action.GetDeviceType,
    }
)

ROLES: dict[str, frozenset[Action]] = {"admin": ALL_ACTIONS, "client": CLIENT_ACTIONS}

WILDCARD = "*"

T = TypeVar("T")


def parse_actions(values: Iterable[object]) -> frozenset[Action]:
    """Actions given as names (``"GetDevice"``) or ids (``3``); anything else is a 422."""
    result: set[Action] = set()
    for value in values:
        if isinstance(value, bool):
            raise Unprocessable(f"unknown action: {value!r}")
        if isinstance(value, int):
            try:
                result.add(Action(value))
            except ValueError:
                raise Unprocessable(f"unknown action id: {value}") from None
        elif isinstance(value, str) and value in Action.__members__:
            result.add(Action[value])
        else:
            raise Unprocessable(f"unknown action: {value!r}")
    return frozenset(result)


def action_mask(actions: Iterable[int]) -> int:
    mask = 0
    for action in actions:
        mask |= 1 << int(action)
    return mask


@dataclass(frozen=True, slots=True)
class Scope:
    """A token's reach: ``None`` means every network (or device) the owner may see."""

    network_ids: frozenset[int] | None = None
    device_ids: frozenset[str] | None = None

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
        )


def _intersect(a: frozenset[T] | None, b: frozenset[T] | None) -> frozenset[T] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and what the presented token lets them do."""

    user_id: int
    role: str
    actions: frozenset[Action]
    scope: Scope
    jti: str
    sid: str
    issued_at: float
    expires_at: float
    mask: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", action_mask(self.actions))

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may(self, action: Action) -> bool:
        return bool(self.mask >> action & 1)

    def may_reach(self, device_id: str, network_id: int, memberships: frozenset[int]) -> bool:
        """Device scope: the token's device and network lists, and (for clients) the user's
        current memberships, which change without a new token."""
        if not self.scope.allows(device_id, network_id):
            return False
        return self.is_admin or network_id in memberships

    def may_see_network(self, network_id: int, memberships: frozenset[int]) -> bool:
        if self.scope.network_ids is not None and network_id not in self.scope.network_ids:
            return False
        return self.is_admin or network_id in memberships
