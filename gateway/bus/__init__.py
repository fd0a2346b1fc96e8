"""The message bus between instances: in-process for one process, Redis pub/sub for many."""

from gateway.bus.base import Bus, Handler

__all__ = ["Bus", "Handler"]
