"""The Python client SDK: asyncio, one WebSocket per client, reconnecting on its own.

    async with GatewayClient("http://127.0.0.1:8080", email=..., password=...) as gw:
        await gw.insert_notification("thermo-1", "temperature", {"celsius": 21.5})
        async for notification in gw.notifications(device_id="thermo-1"):
            ...

It talks to the gateway's public REST and WebSocket APIs only.
"""

from gateway.client.client import GatewayClient
from gateway.client.errors import (
    AuthenticationError,
    BadCredentials,
    ClientClosed,
    GatewayClientError,
    GatewayUnavailable,
    OutcomeUnknown,
    RequestFailed,
    TokenExpired,
    TokenRevoked,
)
from gateway.client.subscription import Subscription

__all__ = [
    "AuthenticationError",
    "BadCredentials",
    "ClientClosed",
    "GatewayClient",
    "GatewayClientError",
    "GatewayUnavailable",
    "OutcomeUnknown",
    "RequestFailed",
    "Subscription",
    "TokenExpired",
    "TokenRevoked",
]
