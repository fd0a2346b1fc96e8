"""The exceptions of the SDK, typed so that a caller can tell a retry from a stop."""

from __future__ import annotations


class GatewayClientError(Exception):
    """Every error the SDK raises."""


class ClientClosed(GatewayClientError):
    """The client was closed; it makes no more requests and its iterators have ended."""


class AuthenticationError(GatewayClientError):
    """The gateway refused the client's credentials; reconnecting would not help."""


class BadCredentials(AuthenticationError):
    """Logging in with the email and password failed (the server's message is the text)."""


class TokenRevoked(AuthenticationError):
    """The token was revoked: the socket closed with 4003, or a refresh was refused as revoked.
    The client does not log in again on its own: a revocation is meant to end the session."""


class TokenExpired(AuthenticationError):
    """The access token expired and the client has no refresh token or password to renew it."""


class RequestFailed(GatewayClientError):
    """The gateway answered a request with an error reply."""

    def __init__(self, action: str, code: int, message: str) -> None:
        super().__init__(f"{action}: {code} {message}")
        self.action = action
        self.code = code
        self.message = message


class OutcomeUnknown(GatewayClientError):
    """The connection was lost (or the reply did not come in time) after a request that changes
    state was sent: it may or may not have been applied, so it is not retried. Check before
    sending it again (a notification or command inserted twice is two items)."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action}: sent, but {reason}; it may or may not have been applied")
        self.action = action
        self.reason = reason


class GatewayUnavailable(GatewayClientError):
    """No connection to the gateway within the time allowed; the request was not sent."""
