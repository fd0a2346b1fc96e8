"""The WebSocket actions, one module per family; importing this package registers them all."""

from gateway.realtime.actions import (  # noqa: F401 - imported to register their actions
    auth,
    catalog,
    commands,
    devices,
    history,
    notifications,
    server,
    subscriptions,
)
