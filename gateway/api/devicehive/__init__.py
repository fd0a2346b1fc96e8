"""DeviceHive's REST dialect under /api/rest: a thin mapping onto the same use cases as /v1.

Importing the package registers its routes; ``install`` adds them to an application.
"""

from gateway.api.devicehive import catalog, devices, tokens  # noqa: F401 - registers routes
from gateway.api.devicehive.routing import install

__all__ = ["install"]
