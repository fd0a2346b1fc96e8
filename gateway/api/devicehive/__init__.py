"""DeviceHive's REST dialect under /api/rest: a thin mapping onto the same use cases as /v1."""
