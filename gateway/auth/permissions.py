"""The rights of each role and the parsing of requested actions.

The Action set, the Scope and the Principal themselves are domain types (``gateway.types``).
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.errors import Unprocessable
from gateway.types import Action

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
