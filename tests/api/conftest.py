"""Fixtures of the REST suite: the standard world of users, networks and devices."""

from tests.realtime.conftest import world  # noqa: F401 - the same world the WebSocket tests use
