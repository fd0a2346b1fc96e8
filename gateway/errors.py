"""Domain errors that carry an HTTP-like status, one class per kind of failure.

Use cases raise these; the REST layer turns them into ``{message, request_id}`` bodies and the
WebSocket layer into ``{status: "error", code, error}`` replies: both faces agree on statuses.
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(GatewayError):
    status = 400


class Unauthorized(GatewayError):
    status = 401


class TokenExpired(Unauthorized):
    """The token was valid but its ``exp`` has passed (a WebSocket closes with 4002)."""

    def __init__(self, message: str = "Token expired") -> None:
        super().__init__(message)


class TokenRevoked(Unauthorized):
    """The token, its login session, its user or its device was revoked (WebSocket: 4003)."""

    def __init__(self, message: str = "Token revoked") -> None:
        super().__init__(message)


class Forbidden(GatewayError):
    status = 403


class NotFound(GatewayError):
    status = 404


class Conflict(GatewayError):
    status = 409


class PayloadTooLarge(GatewayError):
    status = 413


class UnsupportedMediaType(GatewayError):
    status = 415


class Unprocessable(GatewayError):
    status = 422


class TooManyRequests(GatewayError):
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


class Unavailable(GatewayError):
    """A dependency is down or storage is behind: retry after ``retry_after`` seconds."""

    status = 503

    def __init__(self, message: str, retry_after: float = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))
