"""What a session asked to receive: one subscription, its filters and its routing state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.realtime.session import Session


@dataclass(slots=True, eq=False)
class Subscription:
    """What a session asked to receive. ``device_id`` set: one device's channel; otherwise the
    channels of ``network_ids`` (or of every network the session may reach)."""

    id: int
    session: Session
    kind: str
    device_id: str | None
    network_ids: frozenset[int] | None
    device_type_ids: frozenset[int] | None
    names: frozenset[str] | None
    with_updates: bool = False
    channels: set[str] = field(default_factory=set)
    id_bytes: bytes = b""
    replay_buffer: list[tuple[int | None, bytes]] | None = None
    """While a replay runs: live pushes held back as (item id, frame); id None for updates."""
    filtered: bool = field(default=False, init=False)
    """Whether ``wants`` can say no (the fan-out asks it only then)."""

    def __post_init__(self) -> None:
        self.id_bytes = str(self.id).encode()
        self.filtered = not (
            self.network_ids is None and self.device_type_ids is None and self.names is None
        )

    @property
    def dynamic(self) -> bool:
        """Follows the networks the session may reach, which change over time."""
        return self.device_id is None and self.network_ids is None

    def wants(self, network_id: int, device_type_id: int | None, name: str) -> bool:
        if self.network_ids is not None and network_id not in self.network_ids:
            return False
        if self.device_type_ids is not None and device_type_id not in self.device_type_ids:
            return False
        return self.names is None or name in self.names

    def to_json(self) -> dict[str, Any]:
        return {
            "subscriptionId": self.id,
            "type": self.kind,
            "deviceId": self.device_id,
            "networkIds": None if self.network_ids is None else sorted(self.network_ids),
            "deviceTypeIds": None if self.device_type_ids is None else sorted(self.device_type_ids),
            "names": None if self.names is None else sorted(self.names),
        }
