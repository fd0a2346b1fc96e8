"""Authenticating the client's socket and renewing its access token before it expires: over the
socket with ``token/refresh``, or by logging in again when the refresh token has expired."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateway.client.credentials import Credentials, is_due, login, renew_at
from gateway.client.errors import AuthenticationError, RequestFailed, TokenExpired, TokenRevoked

Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Send one request on the socket being set up and return the reply's payload."""


def auth_error(exc: RequestFailed) -> AuthenticationError:
    """The typed error for a 401 reply."""
    text = exc.message.lower()
    if "revoked" in text or "reuse" in text:
        return TokenRevoked(exc.message)
    if "expired" in text:
        return TokenExpired(exc.message)
    return AuthenticationError(exc.message)


class Renewal:
    """Keeps ``credentials.access`` valid. A revoked token is final: the client never logs in
    again on its own after a revocation (that would undo it)."""

    def __init__(
        self, credentials: Credentials, http: aiohttp.ClientSession, base_url: str
    ) -> None:
        self.credentials = credentials
        self._http = http
        self._base_url = base_url

    @property
    def can_renew(self) -> bool:
        return self.credentials.refresh is not None or self.credentials.can_login

    async def authenticate(self, call: Call) -> None:
        """Authenticate a fresh socket, renewing the token first when it is due."""
        credentials = self.credentials
        if is_due(credentials.access) and self.can_renew:
            await self.renew(call, bound=False)
        try:
            await call("authenticate", {"token": credentials.access})
        except RequestFailed as exc:
            if exc.code != 401:
                raise
            error = auth_error(exc)
            if isinstance(error, TokenRevoked) or not self.can_renew:
                raise error from None
            await self.renew(call, bound=False)
            await call("authenticate", {"token": credentials.access})

    async def renew(self, call: Call, *, bound: bool) -> None:
        """A fresh access token: ``token/refresh`` (the gateway swaps it into an authenticated
        socket), or a new login when there is no refresh token or it has expired; ``bound``
        says the socket is authenticated already (a new login's token is then swapped in)."""
        credentials = self.credentials
        if credentials.refresh is not None:
            try:
                reply = await call("token/refresh", {"refreshToken": credentials.refresh})
            except RequestFailed as exc:
                if exc.code != 401:
                    raise
                error = auth_error(exc)
                if isinstance(error, TokenRevoked) or not credentials.can_login:
                    raise error from None
            else:
                credentials.access = str(reply["accessToken"])
                return
        if credentials.email is None or credentials.password is None:
            raise TokenExpired("the access token expired and nothing can renew it")
        credentials.access, credentials.refresh = await login(
            self._http, self._base_url, credentials.email, credentials.password
        )
        if bound:
            await call("authenticate", {"token": credentials.access})

    async def keep_fresh(self, call: Call) -> None:
        """Renew each access token when it is due (a quarter of its life before expiry), for as
        long as the socket lives; returns when the token cannot be renewed."""
        while self.can_renew and self.credentials.access is not None:
            due = renew_at(self.credentials.access)
            if due is None:
                return
            await asyncio.sleep(max(0.0, due - time.time()))
            await self.renew(call, bound=True)
