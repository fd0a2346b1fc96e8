"""One handler per WebSocket action, each declaring whether it needs a live token.

The permission and device scope of each action are checked by the device service (a bit test and
a few dict look-ups); this module turns requests into calls and results into replies.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from gateway import API_VERSION
from gateway.api.schema import (
    DEVICE_ID,
    DEVICE_ID_PATTERN,
    AnyJson,
    Array,
    Bool,
    Int,
    Obj,
    Schema,
    Str,
)
from gateway.auth.permissions import Action, Principal
from gateway.clock import iso, parse_iso
from gateway.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    NotFound,
    Unauthorized,
    Unprocessable,
)
from gateway.realtime.protocol import CloseCode, error, success
from gateway.realtime.session import COMMAND, NOTIFICATION, Session, Subscription

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger(__name__)

After = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Reply:
    payload: dict[str, Any]
    after: After | None = None


Handler = Callable[["Services", Session, dict[str, Any]], Awaitable[Reply | dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    handler: Handler
    schema: Obj
    needs_token: bool = True
    plain: Callable[[dict[str, Any]], bool] | None = None
    """A cheap test that the request is certainly valid (the generic walk is then skipped; when
    it says no, the generic walk runs and names the problem)."""


ACTIONS: dict[str, ActionSpec] = {}

NAME = Str(min_length=1, max_length=256)
TIMESTAMP = Str(max_length=64, description="ISO-8601; UTC unless it carries a zone")
NAMES = Array(NAME, max_items=256)
IDS = Array(Int(minimum=1), max_items=1000)


def action(
    name: str,
    schema: dict[str, Schema],
    required: tuple[str, ...] = (),
    needs_token: bool = True,
    plain: Callable[[dict[str, Any]], bool] | None = None,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ACTIONS[name] = ActionSpec(
            handler=handler,
            # Extra fields are tolerated: DeviceHive clients send some we do not use.
            schema=Obj(
                {"action": Str(), "requestId": AnyJson(), **schema}, required, additional=True
            ),
            needs_token=needs_token,
            plain=plain,
        )
        return handler

    return register


def _principal(session: Session) -> Principal:
    principal = session.principal
    assert principal is not None
    return principal


def _timestamp(value: str | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise Unprocessable(f"{field}: not an ISO-8601 timestamp: {value!r}") from None


# -- session and tokens --------------------------------------------------------------------


@action("server/info", {}, needs_token=False)
async def server_info(
    services: Services, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    settings = services.settings
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    return {
        "info": {
            "apiVersion": API_VERSION,
            "serverTimestamp": iso(time.time()),
            "restServerUrl": base.rstrip("/") + "/v1",
            "webSocketServerUrl": base.replace("http", "ws", 1).rstrip("/") + "/v1/ws",
        }
    }


async def authenticate_session(services: Services, session: Session, token: str) -> Principal:
    principal = services.auth.authenticate(token)
    current = session.principal
    if current is not None and current.user_id != principal.user_id:
        raise Forbidden("This socket belongs to another user; open a new connection")
    registry = services.registry
    if not principal.is_admin and registry.known_memberships(principal.user_id) is None:
        await registry.load_memberships(principal.user_id)
        # A revocation may have arrived while we waited; bind() below must not miss it.
        if services.view.is_revoked(principal):
            raise Unauthorized("Token revoked")
    services.hub.bind(session, principal)
    return principal


@action(
    "authenticate", {"token": Str(min_length=1, max_length=8192)}, ("token",), needs_token=False
)
async def authenticate(services: Services, session: Session, request: dict[str, Any]) -> None:
    await authenticate_session(services, session, request["token"])


@action(
    "token",
    {"login": Str(min_length=1, max_length=320), "password": Str(min_length=1, max_length=1024)},
    ("login", "password"),
    needs_token=False,
)
async def token(services: Services, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    pair = await services.auth.login(request["login"], request["password"], session.remote or "ws")
    return {"accessToken": pair.access.token, "refreshToken": pair.refresh.token}


@action(
    "token/refresh",
    {"refreshToken": Str(min_length=1, max_length=8192)},
    ("refreshToken",),
    needs_token=False,
)
async def token_refresh(
    services: Services, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    access = await services.auth.access_from_refresh(request["refreshToken"])
    current = session.principal
    if current is not None:
        fresh = services.auth.authenticate(access.token)
        if fresh.user_id == current.user_id:
            services.hub.bind(session, fresh)
    return {"accessToken": access.token}


# -- devices -------------------------------------------------------------------------------

DEVICE_BODY = Obj(
    {
        "name": NAME,
        "data": AnyJson(),
        "networkId": Int(minimum=1),
        "deviceTypeId": Int(minimum=1, nullable=True),
        "isBlocked": Bool(),
        "id": DEVICE_ID,
    },
    additional=True,
)


@action("device/get", {"deviceId": DEVICE_ID}, ("deviceId",))
async def device_get(
    services: Services, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    device = await services.device_service.device_for(
        _principal(session), request["deviceId"], Action.GetDevice
    )
    return {"device": device.to_json()}


@action(
    "device/list",
    {"networkId": Int(minimum=1), "take": Int(minimum=1, maximum=1000), "skip": Int(minimum=0)},
)
async def device_list(
    services: Services, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    devices = await services.device_service.list_devices(_principal(session), limit=10_000)
    if "networkId" in request:
        devices = [d for d in devices if d.network_id == request["networkId"]]
    skip = request.get("skip", 0)
    devices = devices[skip : skip + request.get("take", 1000)]
    return {"devices": [device.to_json() for device in devices]}


@action("device/save", {"deviceId": DEVICE_ID, "device": DEVICE_BODY}, ("deviceId", "device"))
async def device_save(services: Services, session: Session, request: dict[str, Any]) -> None:
    fields = {k: v for k, v in request["device"].items() if k in DEVICE_BODY.properties}
    fields.pop("id", None)
    await services.device_service.save_device(_principal(session), request["deviceId"], fields)


# -- notifications and commands ------------------------------------------------------------

NOTIFICATION_BODY = Obj(
    {"notification": NAME, "parameters": AnyJson(), "timestamp": TIMESTAMP},
    ("notification",),
    additional=True,
)


_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_NOTIFICATION_KEYS = frozenset({"notification", "parameters", "timestamp"})


def _plain_notification(request: dict[str, Any]) -> bool:
    """The usual notification/insert, recognised in a few type checks (the hot path)."""
    device_id = request.get("deviceId")
    body = request.get("notification")
    if type(device_id) is not str or type(body) is not dict or not _DEVICE_ID.fullmatch(device_id):
        return False
    name = body.get("notification")
    stamp = body.get("timestamp")
    return (
        type(name) is str
        and 0 < len(name) <= 256
        and body.keys() <= _NOTIFICATION_KEYS
        and (stamp is None or (type(stamp) is str and len(stamp) <= 64))
    )


@action(
    "notification/insert",
    {"deviceId": DEVICE_ID, "notification": NOTIFICATION_BODY},
    ("deviceId", "notification"),
    plain=_plain_notification,
)
async def notification_insert(
    services: Services, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    body = request["notification"]
    item = await services.device_service.insert_notification(
        _principal(session),
        request["deviceId"],
        body["notification"],
        body.get("parameters"),
        _timestamp(body.get("timestamp"), "notification.timestamp"),
    )
    return {"notification": {"id": item.id, "timestamp": iso(item.timestamp)}}


COMMAND_BODY = Obj(
    {
        "command": NAME,
        "parameters": AnyJson(),
        "lifetime": Int(minimum=0, nullable=True),
        "status": Str(max_length=256, nullable=True),
        "result": AnyJson(),
        "timestamp": TIMESTAMP,
    },
    ("command",),
    additional=True,
)


@action("command/insert", {"deviceId": DEVICE_ID, "command": COMMAND_BODY}, ("deviceId", "command"))
async def command_insert(
    services: Services, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    body = dict(request["command"])
    body["timestamp"] = _timestamp(body.get("timestamp"), "command.timestamp")
    item = await services.device_service.insert_command(
        _principal(session), request["deviceId"], body
    )
    return {
        "command": {
            "id": item.id,
            "timestamp": iso(item.timestamp),
            "lastUpdated": iso(item.last_updated),
            "userId": item.user_id,
        }
    }


UPDATE_BODY = Obj(
    {"status": Str(max_length=256, nullable=True), "result": AnyJson()}, additional=True
)


@action(
    "command/update",
    {"deviceId": DEVICE_ID, "commandId": Int(minimum=1), "command": UPDATE_BODY},
    ("deviceId", "commandId", "command"),
)
async def command_update(services: Services, session: Session, request: dict[str, Any]) -> None:
    body = {k: v for k, v in request["command"].items() if k in ("status", "result")}
    await services.device_service.update_command(
        _principal(session), request["deviceId"], request["commandId"], body
    )


# -- subscriptions -------------------------------------------------------------------------

SUBSCRIBE = {
    "deviceId": DEVICE_ID,
    "networkIds": IDS,
    "deviceTypeIds": IDS,
    "names": NAMES,
    "timestamp": TIMESTAMP,
}


async def _subscribe(
    services: Services, session: Session, request: dict[str, Any], kind: str, needed: Action
) -> Reply:
    principal = _principal(session)
    device_service = services.device_service
    device_service.require(principal, needed)
    device_id: str | None = request.get("deviceId")
    if request.get("networkIds") == [] or request.get("deviceTypeIds") == []:
        raise Unprocessable("networkIds and deviceTypeIds, when given, must not be empty")
    network_ids = frozenset(request["networkIds"]) if "networkIds" in request else None
    if device_id is not None and network_ids is not None:
        raise Unprocessable("give deviceId or networkIds, not both")
    if device_id is not None:
        await device_service.device_for(principal, device_id, needed)
    if network_ids is not None:
        visible = await device_service.visible_networks(principal)
        outside = sorted(network_ids - visible) if visible is not None else []
        if outside:
            raise Forbidden("networkIds outside the token's scope: " + ", ".join(map(str, outside)))
    since = _timestamp(request.get("timestamp"), "timestamp")
    subscription = services.hub.subscribe(
        session,
        kind,
        device_id=device_id,
        network_ids=network_ids,
        device_type_ids=frozenset(request["deviceTypeIds"])
        if request.get("deviceTypeIds")
        else None,
        names=frozenset(request["names"]) if request.get("names") else None,
        with_updates=bool(request.get("returnUpdatedCommands", False)),
        replaying=since is not None,
    )
    after = None if since is None else _replayer(services, subscription, since)
    return Reply({"subscriptionId": subscription.id}, after)


_REPLAY_STALL = 10.0
"""How long a replay waits for a client to read before sending on regardless (and the session
is then closed as a slow consumer if its queue overflows)."""


async def _send_paced(session: Session, data: bytes) -> None:
    """Send one replayed frame, first letting the writer drain a half-full queue: a replay may
    hold more items than the outbound queue, and a client reading at its own pace is not a slow
    consumer."""
    if session.backlogged():
        await session.flush(_REPLAY_STALL)
    session.send(data)


def _replayer(services: Services, subscription: Subscription, since: float) -> After:
    """Stored items newer than ``since`` first, then what arrived live meanwhile, without a gap
    and without sending any item twice."""

    async def replay() -> None:
        session = subscription.session
        sent: set[int] = set()
        try:
            devices = None if subscription.device_id is None else [subscription.device_id]
            items = await services.device_service.history(
                subscription.kind,
                since,
                device_ids=devices,
                network_ids=subscription.network_ids,
                names=subscription.names,
            )
            action, key = (
                ("notification/insert", b"notification")
                if subscription.kind == NOTIFICATION
                else ("command/insert", b"command")
            )
            memberships = services.registry.memberships
            for item in items:
                if session.closing:
                    return
                principal = session.live_principal
                if principal is None or not (
                    subscription.wants(item.network_id, item.device_type_id, item.name)
                    and principal.may_reach(
                        item.device_id, item.network_id, memberships(principal.user_id)
                    )
                ):
                    continue
                sent.add(item.id)
                await _send_paced(
                    session,
                    b"".join(
                        (
                            b'{"action":"',
                            action.encode(),
                            b'","subscriptionId":',
                            subscription.id_bytes,
                            b',"',
                            key,
                            b'":',
                            orjson.dumps(item.to_json()),
                            b"}",
                        )
                    ),
                )
            # Live items that arrived meanwhile; more may arrive while these are paced out.
            while subscription.replay_buffer and not session.closing:
                buffered, subscription.replay_buffer = subscription.replay_buffer, []
                for item_id, data in buffered:
                    if item_id is None or item_id not in sent:
                        await _send_paced(session, data)
        finally:
            buffered = subscription.replay_buffer or []
            subscription.replay_buffer = None
            for item_id, data in buffered:
                if item_id is None or item_id not in sent:
                    session.send(data)

    return replay


@action("notification/subscribe", SUBSCRIBE)
async def notification_subscribe(
    services: Services, session: Session, request: dict[str, Any]
) -> Reply:
    return await _subscribe(services, session, request, NOTIFICATION, Action.GetDeviceNotification)


@action("command/subscribe", {**SUBSCRIBE, "returnUpdatedCommands": Bool()})
async def command_subscribe(services: Services, session: Session, request: dict[str, Any]) -> Reply:
    return await _subscribe(services, session, request, COMMAND, Action.GetDeviceCommand)


def _unsubscribe(services: Services, session: Session, request: dict[str, Any], kind: str) -> None:
    subscription_id = request.get("subscriptionId")
    if subscription_id is None:
        for subscription in [s for s in session.subscriptions.values() if s.kind == kind]:
            services.hub.unsubscribe(subscription)
        return
    found = session.subscriptions.get(subscription_id)
    if found is None or found.kind != kind:
        raise NotFound(f"Subscription {subscription_id} not found")
    services.hub.unsubscribe(found)


@action("notification/unsubscribe", {"subscriptionId": Int(minimum=1)})
async def notification_unsubscribe(
    services: Services, session: Session, request: dict[str, Any]
) -> None:
    _unsubscribe(services, session, request, NOTIFICATION)


@action("command/unsubscribe", {"subscriptionId": Int(minimum=1)})
async def command_unsubscribe(
    services: Services, session: Session, request: dict[str, Any]
) -> None:
    _unsubscribe(services, session, request, COMMAND)


@action("subscription/list", {"type": Str(enum=[NOTIFICATION, COMMAND])})
async def subscription_list(
    services: Services, session: Session, request: dict[str, Any]
) -> dict[str, Any]:
    kind = request.get("type")
    return {
        "subscriptions": [
            s.to_json() for s in session.subscriptions.values() if kind is None or s.kind == kind
        ]
    }


# -- dispatch ------------------------------------------------------------------------------


def _envelope(raw: str | bytes) -> tuple[Any, Any]:
    """The action and requestId of a request, when it has them: a rate-limited client waiting
    for the reply to its requestId must get its 429, not a reply it cannot match."""
    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(request, dict):
        return None, None
    action_name = request.get("action")
    return (action_name if isinstance(action_name, str) else None), request.get("requestId")


def _may_hold_nul(raw: str | bytes) -> bool:
    """JSON carries NUL only escaped; PostgreSQL refuses it, so such input gets the full check."""
    return ("\\u0000" in raw) if isinstance(raw, str) else (b"\\u0000" in raw)


class Dispatcher:
    """Parses, rate-limits, authorizes and runs one inbound message; never lets it crash the
    session."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle(self, session: Session, raw: str | bytes) -> None:
        if session.closing:
            return
        settings = self.services.settings
        if not session.take_token():
            session.rejected += 1
            if session.rejected > settings.ws_burst:
                session.close(CloseCode.RATE_LIMITED, "rate limit exceeded")
            else:
                refused, refused_id = _envelope(raw)
                session.send(error(refused, refused_id, 429, "Rate limit exceeded; slow down"))
            return
        session.rejected = 0
        action_name: Any = None
        request_id: Any = None
        try:
            try:
                request = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise BadRequest("Malformed JSON") from None
            if not isinstance(request, dict):
                raise BadRequest("A request must be a JSON object")
            action_name = request.get("action")
            request_id = request.get("requestId")
            spec = ACTIONS.get(action_name) if isinstance(action_name, str) else None
            if spec is None:
                raise BadRequest(f"Unknown action: {action_name!r}")
            if spec.needs_token:
                self._check_token(session)
            if spec.plain is None or _may_hold_nul(raw) or not spec.plain(request):
                try:
                    request = spec.schema.check(request, "")
                except Unprocessable as exc:
                    raise BadRequest(exc.message) from None
            result = await spec.handler(self.services, session, request)
        except GatewayError as exc:
            session.errors += 1
            session.send(error(action_name, request_id, exc.status, exc.message))
            if session.errors >= settings.ws_max_errors:
                session.close(CloseCode.POLICY_VIOLATION, "too many errors")
            return
        except Exception:
            log.exception("session %s: action %r failed", session.id, action_name)
            session.send(error(action_name, request_id, 500, "Internal server error"))
            return
        session.errors = 0
        reply = result if isinstance(result, Reply) else Reply(result or {})
        session.send(success(action_name, request_id, reply.payload))
        if reply.after is not None:
            await reply.after()

    def _check_token(self, session: Session) -> None:
        principal = session.principal
        if principal is None:
            raise Unauthorized("Not authenticated: send authenticate with an access token")
        if session.expired:
            raise Unauthorized("Token expired")
        if self.services.view.is_revoked(principal):
            session.close(CloseCode.TOKEN_REVOKED, "token revoked")
            raise Unauthorized("Token revoked")
