"""WebSocket sessions for devices and dashboards, every message authorized."""
