"""gateway: an async IoT authentication and real-time gateway."""

__version__ = "0.1.0"
API_VERSION = "1"
