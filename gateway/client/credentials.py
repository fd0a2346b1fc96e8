"""The client's tokens: logging in over REST, and when an access token is due for renewal."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

import aiohttp
import orjson

from gateway.client.errors import BadCredentials, GatewayClientError, RequestFailed


class LoginUnavailable(GatewayClientError):
    """The login could not be made now (throttled, server busy or unreachable): try again later."""


@dataclass(slots=True)
class Credentials:
    """What the client may authenticate with. The password is kept only when the caller gave
    it, so that an expired refresh token can be replaced by logging in again."""

    email: str | None = None
    password: str | None = None
    access: str | None = None
    refresh: str | None = None

    @property
    def can_login(self) -> bool:
        return self.email is not None and self.password is not None


def _claims(token: str) -> dict[str, object]:
    """The JWT payload, read without verifying it: the client only schedules with it (the
    gateway verifies every token it is given)."""
    try:
        payload = token.split(".")[1]
        decoded = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, orjson.JSONDecodeError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def renew_at(token: str) -> float | None:
    """When to renew ``token`` (epoch seconds): a quarter of its lifetime before its expiry,
    at most a minute before; None when it does not say when it expires."""
    claims = _claims(token)
    expires = claims.get("exp")
    if not isinstance(expires, int | float):
        return None
    issued = claims.get("iat")
    lifetime = float(expires) - float(issued) if isinstance(issued, int | float) else 60.0
    return float(expires) - min(60.0, max(lifetime, 0.0) / 4)


def is_due(token: str | None) -> bool:
    """True when ``token`` is missing or should be renewed before use."""
    if token is None:
        return True
    due = renew_at(token)
    return due is not None and due <= time.time()


async def login(
    http: aiohttp.ClientSession, base_url: str, email: str, password: str
) -> tuple[str, str]:
    """POST /v1/auth/login: (access token, refresh token)."""
    try:
        async with http.post(
            base_url + "/v1/auth/login",
            json={"email": email, "password": password},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            body = await response.json(content_type=None, loads=orjson.loads)
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        raise LoginUnavailable(f"login failed: {exc!r}") from exc
    message = body.get("message", "") if isinstance(body, dict) else ""
    if status == 200 and isinstance(body, dict):
        return str(body["access_token"]), str(body["refresh_token"])
    if status == 401:
        raise BadCredentials(message or "Invalid email or password")
    if status == 429 or status >= 500:
        raise LoginUnavailable(f"login: {status} {message}")
    raise RequestFailed("login", status, str(message))
