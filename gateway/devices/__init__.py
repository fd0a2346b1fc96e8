"""Use cases of devices, networks, memberships, notifications and commands (REST and WebSocket)."""
