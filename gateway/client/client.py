"""GatewayClient: the public face of the SDK (devices, notifications, commands) over one socket."""

from __future__ import annotations

import datetime
from types import TracebackType
from typing import Any, Self

import aiohttp

from gateway.client.connection import Connection
from gateway.client.credentials import Credentials
from gateway.client.errors import ClientClosed
from gateway.client.subscription import MAX_PENDING, Subscription

Since = str | datetime.datetime | None


def _timestamp(value: Since) -> str | None:
    """The gateway's timestamp form: UTC ISO-8601 with milliseconds."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("since: give an aware datetime (or the gateway's timestamp string)")
    utc = value.astimezone(datetime.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _filters(
    device_id: str | None, network_ids: list[int] | None, names: list[str] | None
) -> dict[str, Any]:
    if device_id is not None and network_ids is not None:
        raise ValueError("give device_id or network_ids, not both")
    filters: dict[str, Any] = {}
    if device_id is not None:
        filters["deviceId"] = device_id
    if network_ids is not None:
        filters["networkIds"] = list(network_ids)
    if names is not None:
        filters["names"] = list(names)
    return filters


class GatewayClient:
    """An asyncio client of one gateway: one WebSocket multiplexing every request and
    subscription, reconnected, re-authenticated and resubscribed on its own.

    Give ``email`` and ``password`` (logs in over REST; may log in again when the refresh
    token has expired), or a ``refresh_token``, or an access ``token`` (used until it expires:
    it cannot be renewed). Use it as ``async with GatewayClient(...) as gw:``.
    """

    def __init__(
        self,
        url: str,
        *,
        email: str | None = None,
        password: str | None = None,
        token: str | None = None,
        refresh_token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        request_timeout: float = 30.0,
        connect_timeout: float = 30.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 15.0,
        heartbeat: float = 20.0,
    ) -> None:
        if (email is None) != (password is None):
            raise ValueError("give email and password together")
        if email is None and token is None and refresh_token is None:
            raise ValueError("give email and password, a token or a refresh_token")
        if not url.startswith(("http://", "https://")):
            raise ValueError("url: the gateway's http:// or https:// base URL")
        self.url = url.rstrip("/")
        self._credentials = Credentials(email, password, token, refresh_token)
        self._own_session = session is None
        self._session = session
        self._options = {
            "request_timeout": request_timeout,
            "backoff_base": backoff_base,
            "backoff_cap": backoff_cap,
            "heartbeat": heartbeat,
        }
        self._connect_timeout = connect_timeout
        self._connection: Connection | None = None
        self._closed = False

    # -- life ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket and authenticate. Raises :class:`BadCredentials` (or another
        :class:`AuthenticationError`) at once, :class:`GatewayUnavailable` after
        ``connect_timeout`` while the gateway cannot be reached."""
        if self._closed:
            raise ClientClosed("the client was closed; make a new one")
        if self._connection is not None:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._connection = Connection(self.url, self._credentials, self._session, **self._options)
        try:
            await self._connection.start(self._connect_timeout)
        except BaseException:
            await self._shut()  # connect() may be called again
            raise

    async def close(self) -> None:
        """Close the socket; every iterator ends, every waiting request raises ClientClosed."""
        self._closed = True
        await self._shut()

    async def _shut(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connection(self) -> Connection:
        if self._closed:
            raise ClientClosed("the client was closed")
        if self._connection is None:
            raise RuntimeError("the client is not connected: use `async with GatewayClient(...)`")
        return self._connection

    @property
    def connected(self) -> bool:
        """True while the socket is open and authenticated."""
        return self._connection is not None and self._connection.connected

    @property
    def access_token(self) -> str | None:
        """The current access token (renewed over the socket), for REST calls of your own."""
        return self._credentials.access

    # -- requests --------------------------------------------------------------------------

    async def request(self, action: str, **fields: Any) -> dict[str, Any]:
        """Any WebSocket action; returns the reply without its envelope. Raises
        :class:`RequestFailed` on an error reply."""
        return await self.connection.request(action, fields)

    async def server_info(self) -> dict[str, Any]:
        info: dict[str, Any] = (await self.request("server/info"))["info"]
        return info

    async def devices(self, network_id: int | None = None) -> list[dict[str, Any]]:
        fields = {} if network_id is None else {"networkId": network_id}
        devices: list[dict[str, Any]] = (await self.request("device/list", **fields))["devices"]
        return devices

    async def device(self, device_id: str) -> dict[str, Any]:
        device: dict[str, Any] = (await self.request("device/get", deviceId=device_id))["device"]
        return device

    async def insert_notification(
        self,
        device_id: str,
        notification: str,
        parameters: Any = None,
        *,
        timestamp: Since = None,
    ) -> dict[str, Any]:
        """Returns ``{"id", "timestamp"}``. If the connection is lost after sending, raises
        :class:`OutcomeUnknown` (never resent on its own)."""
        body: dict[str, Any] = {"notification": notification, "parameters": parameters}
        stamp = _timestamp(timestamp)
        if stamp is not None:
            body["timestamp"] = stamp
        reply = await self.request("notification/insert", deviceId=device_id, notification=body)
        result: dict[str, Any] = reply["notification"]
        return result

    async def insert_command(
        self,
        device_id: str,
        command: str,
        parameters: Any = None,
        *,
        lifetime: int | None = None,
    ) -> dict[str, Any]:
        """Returns the command object as subscribers see it (``networkId`` and
        ``deviceTypeId`` aside)."""
        body: dict[str, Any] = {"command": command, "parameters": parameters}
        if lifetime is not None:
            body["lifetime"] = lifetime
        reply = await self.request("command/insert", deviceId=device_id, command=body)
        return {
            "deviceId": device_id,
            "command": command,
            "parameters": parameters,
            "lifetime": lifetime,
            "status": None,
            "result": None,
            **reply["command"],
        }

    async def update_command(
        self, device_id: str, command_id: int, *, status: str | None = None, result: Any = None
    ) -> None:
        await self.request(
            "command/update",
            deviceId=device_id,
            commandId=command_id,
            command={"status": status, "result": result},
        )

    # -- subscriptions ---------------------------------------------------------------------

    def notifications(
        self,
        *,
        device_id: str | None = None,
        network_ids: list[int] | None = None,
        names: list[str] | None = None,
        since: Since = None,
        max_pending: int = MAX_PENDING,
    ) -> Subscription:
        """Notifications as they arrive, after those newer than ``since`` (default: from the
        moment of subscribing). One device, some networks, or all the token may see. At most
        ``max_pending`` wait for the consumer; beyond, the rest are fetched again later."""
        filters = _filters(device_id, network_ids, names)
        return self._subscription("notification", filters, since, False, max_pending)

    def commands(
        self,
        *,
        device_id: str | None = None,
        network_ids: list[int] | None = None,
        names: list[str] | None = None,
        since: Since = None,
        with_updates: bool = True,
        max_pending: int = MAX_PENDING,
    ) -> Subscription:
        """Commands as they arrive and, with ``with_updates``, each later state of them (same
        ``id``, a newer ``lastUpdated``)."""
        filters = _filters(device_id, network_ids, names)
        return self._subscription("command", filters, since, with_updates, max_pending)

    def _subscription(
        self,
        kind: str,
        filters: dict[str, Any],
        since: Since,
        with_updates: bool,
        max_pending: int,
    ) -> Subscription:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        return Subscription(
            self.connection, kind, filters, _timestamp(since), with_updates, max_pending
        )
