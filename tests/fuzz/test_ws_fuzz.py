"""WebSocket fuzzing with hypothesis, against a gateway process started here.

Each example opens a socket (admin, client, no token or a bad one), sends a plan of frames drawn
over the envelope and every action's fields (types, depth, sizes, unicode, NUL, binary frames,
bad UTF-8, oversized frames, floods), then a sentinel request, and reads until every frame has
its reply or the socket closed. It holds that:

- every frame the server read gets exactly one reply (success, or an error whose code is a
  documented one, never 500), or the session ends with a documented close code (never 1006,
  never 1011);
- the server logs no traceback;
- every notification and command acknowledged is stored (checked by id at the end).

The normal suite runs a short pass; ``make fuzz`` sets FUZZ_WS_EXAMPLES for at least 10,000
frames. The figures go to stdout and to FUZZ_FIGURES when set.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.test_rest_schemathesis import record
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, GatewayProcess, gateway_env
from tests.support.servers import free_port

EXAMPLES = int(os.environ.get("FUZZ_WS_EXAMPLES", "40"))
MIN_FRAMES = int(os.environ.get("FUZZ_WS_MIN_FRAMES", "300"))
RANDOM = os.environ.get("FUZZ_RANDOM")
"""Set (make fuzz): new examples each run; unset (make test): the same examples every run."""
MAX_BYTES = 64 * 1024

pytestmark = pytest.mark.timeout(int(os.environ.get("FUZZ_TIMEOUT", "600")))

ERROR_CODES = {400, 401, 403, 404, 409, 422, 429, 503}
"""The codes of error replies the README documents (500 would be a bug)."""

CLOSE_CODES = {1000, 1002, 1007, 1008, 1009, 4001, 4008, 4029}
"""What a fuzzing client may be closed with: its own close answered, protocol errors, bad
UTF-8, too many errors, too big, a bad token on the upgrade, slow consumer, rate limit."""

ACTIONS = [
    "server/info",
    "authenticate",
    "token",
    "token/refresh",
    "device/get",
    "device/list",
    "device/save",
    "notification/insert",
    "notification/subscribe",
    "notification/unsubscribe",
    "command/insert",
    "command/update",
    "command/subscribe",
    "command/unsubscribe",
    "subscription/list",
]

# -- strategies ----------------------------------------------------------------------------


def nested(depth: int, leaf: Any = 1, kind: str = "list") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


TEXT = st.text(
    st.characters(codec="utf-8") | st.sampled_from("\x00\u2028\ufeff"),  # no lone surrogates
    max_size=40,
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=16,
)
DEEP = st.builds(nested, st.integers(1, 400), SCALARS, st.sampled_from(["list", "dict"]))
ANY = JSON | DEEP | st.text(min_size=1000, max_size=5000)
PARAMETERS = st.integers(0, 3).flatmap(lambda n: ANY if n == 0 else JSON)


def field_or_junk(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right type, sometimes anything."""
    return st.integers(0, 9).flatmap(lambda n: ANY if n == 0 else good)


DEVICE_IDS = field_or_junk(
    st.integers(0, 4).flatmap(
        lambda n: (
            st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True)
            if n == 0
            else st.sampled_from(["d1", "d1", "d2", "d-new", "nope"])
        )
    )
)
NAMES = field_or_junk(
    st.integers(0, 2).flatmap(
        lambda n: TEXT if n == 0 else st.sampled_from(["temp", "temp", "x" * 257])
    )
)
IDS = field_or_junk(st.integers(min_value=-5, max_value=2**64))


def timestamps(now: float) -> st.SearchStrategy[Any]:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return field_or_junk(
        st.sampled_from(
            [
                iso + ".000Z",
                "9999-12-31T23:59:59-14:00",
                "9999-12-31T23:59:59Z",
                "0001-01-01T00:00:00+01:00",
                "1969-12-31T23:59:59Z",
                "2999-01-01T00:00:00Z",
                "yesterday",
                "",
                "2026-13-45T99:99:99Z",
            ]
        )
        | TEXT
    )


def action_fields(action: str, now: float) -> st.SearchStrategy[dict[str, Any]]:
    stamp = timestamps(now)
    if action == "authenticate":
        return st.fixed_dictionaries(
            {"token": field_or_junk(st.sampled_from(["<admin>", "<client>"]) | TEXT)}
        )
    if action == "token":
        return st.fixed_dictionaries(
            {"login": field_or_junk(st.sampled_from([ADMIN_EMAIL, "client@example.com"]) | TEXT)},
            optional={"password": field_or_junk(st.sampled_from([ADMIN_PASSWORD, "nope"]) | TEXT)},
        )
    if action == "token/refresh":
        return st.fixed_dictionaries({"refreshToken": field_or_junk(TEXT)})
    if action in ("device/get",):
        return st.fixed_dictionaries({}, optional={"deviceId": DEVICE_IDS})
    if action == "device/list":
        return st.fixed_dictionaries({}, optional={"networkId": IDS, "take": IDS, "skip": IDS})
    if action == "device/save":
        body = st.fixed_dictionaries(
            {},
            optional={
                "name": NAMES,
                "data": ANY,
                "networkId": IDS,
                "deviceTypeId": IDS,
                "isBlocked": field_or_junk(st.booleans()),
            },
        )
        return st.fixed_dictionaries(
            {"deviceId": DEVICE_IDS}, optional={"device": field_or_junk(body)}
        )
    if action == "notification/insert":
        body = st.fixed_dictionaries(
            {"notification": NAMES}, optional={"parameters": PARAMETERS, "timestamp": stamp}
        )
        return st.fixed_dictionaries({"deviceId": DEVICE_IDS, "notification": field_or_junk(body)})
    if action == "command/insert":
        body = st.fixed_dictionaries(
            {"command": NAMES},
            optional={
                "parameters": PARAMETERS,
                "lifetime": field_or_junk(st.integers(min_value=-(2**65), max_value=2**65)),
                "status": field_or_junk(TEXT),
                "result": ANY,
                "timestamp": stamp,
            },
        )
        return st.fixed_dictionaries({"deviceId": DEVICE_IDS, "command": field_or_junk(body)})
    if action == "command/update":
        body = st.fixed_dictionaries({}, optional={"status": field_or_junk(TEXT), "result": ANY})
        return st.fixed_dictionaries(
            {"deviceId": DEVICE_IDS, "commandId": IDS, "command": field_or_junk(body)}
        )
    if action in ("notification/subscribe", "command/subscribe"):
        return st.fixed_dictionaries(
            {},
            optional={
                "deviceId": DEVICE_IDS,
                "networkIds": field_or_junk(st.lists(IDS, max_size=3)),
                "deviceTypeIds": field_or_junk(st.lists(IDS, max_size=3)),
                "names": field_or_junk(st.lists(NAMES, max_size=3)),
                "timestamp": stamp,
                "returnUpdatedCommands": field_or_junk(st.booleans()),
            },
        )
    if action in ("notification/unsubscribe", "command/unsubscribe"):
        return st.fixed_dictionaries({}, optional={"subscriptionId": IDS})
    if action == "subscription/list":
        return st.fixed_dictionaries(
            {}, optional={"type": field_or_junk(st.sampled_from(["notification", "command"]))}
        )
    return st.fixed_dictionaries({})


@st.composite
def requests(draw: st.DrawFn, now: float) -> dict[str, Any]:
    action = draw(field_or_junk(st.sampled_from(ACTIONS)))
    fields = draw(action_fields(action, now)) if isinstance(action, str) else {}
    envelope: dict[str, Any] = {"action": action, **fields}
    if draw(st.booleans()):
        envelope["requestId"] = draw(field_or_junk(st.integers() | TEXT | JSON))
    if draw(st.integers(0, 19)) == 0:
        del envelope["action"]
    return envelope


@st.composite
def inserts(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed insert with fuzzed content: what must be stored once acknowledged."""
    device_id = draw(st.sampled_from(["d1", "d2"]))
    if draw(st.booleans()):
        body = {
            "notification": draw(st.sampled_from(["temp", "t\u00e9", "\u2028"])),
            "parameters": draw(JSON),
        }
        return {"action": "notification/insert", "deviceId": device_id, "notification": body}
    body = {"command": "set", "parameters": draw(JSON), "result": draw(JSON)}
    return {"action": "command/insert", "deviceId": device_id, "command": body}


@dataclass(frozen=True)
class Frame:
    kind: str  # "text", "binary", "bad-utf8", "big"
    data: bytes
    repeat: int = 1


def encode(envelope: dict[str, Any]) -> bytes:
    # The standard encoder writes what orjson refuses to (deeper than 254, NaN is excluded).
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def frames(draw: st.DrawFn, now: float) -> Frame:
    choice = draw(st.integers(0, 99))
    if choice < 20:
        return Frame(draw(st.sampled_from(["text", "binary"])), encode(draw(inserts())))
    if choice < 70:
        return Frame(draw(st.sampled_from(["text", "binary"])), encode(draw(requests(now))))
    if choice < 80:
        return Frame("text", draw(TEXT).encode())
    if choice < 87:
        return Frame("binary", draw(st.binary(max_size=64)))
    if choice < 90:
        return Frame("bad-utf8", b'{"action": "server/info", "requestId": "\xff\xfe"}')
    if choice < 93:
        size = draw(st.sampled_from([MAX_BYTES, MAX_BYTES + 1, MAX_BYTES + 4096]))
        head = b'{"action":"server/info","pad":"'
        return Frame("big", head + b"x" * (size - len(head) - 2) + b'"}')
    count = draw(st.integers(50, 1200))
    return Frame("binary", encode(draw(requests(now))), repeat=count)


@st.composite
def plans(draw: st.DrawFn) -> tuple[str, list[Frame]]:
    who = draw(st.sampled_from(["admin", "admin", "client", "none", "bad"]))
    return who, draw(st.lists(frames(time.time()), min_size=1, max_size=12))


# -- the oracle ----------------------------------------------------------------------------


@dataclass
class Stats:
    examples: int = 0
    frames: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)
    crashed: int = 0
    notifications: set[int] = field(default_factory=set)
    commands: set[int] = field(default_factory=set)


@dataclass
class World:
    url: str
    tokens: dict[str, str]


async def closed_after(play: Coroutine[Any, Any, None]) -> None:
    """Run ``play``, then let the loop turn once more: a transport closed by the client session
    (a reset one too) releases its socket on the next iteration, before asyncio.run ends."""
    try:
        await play
    finally:
        await asyncio.sleep(0.01)


async def play(world: World, who: str, plan: list[Frame], stats: Stats) -> None:
    token = world.tokens.get(who)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(world.url, headers=headers, max_msg_size=0, autoping=True) as ws,
    ):
        sent = 0
        closing_frame = False
        failed_by_protocol = False
        try:
            for frame in plan:
                data = frame.data.replace(b"<admin>", world.tokens["admin"].encode()).replace(
                    b"<client>", world.tokens["client"].encode()
                )
                for _ in range(frame.repeat):
                    if ws.closed:
                        break
                    if closing_frame:
                        failed_by_protocol = True  # something follows a connection-ending frame
                    if frame.kind == "bad-utf8":
                        await ws.send_frame(data, aiohttp.WSMsgType.TEXT)
                        closing_frame = True
                    elif frame.kind == "text":
                        await ws.send_frame(data, aiohttp.WSMsgType.TEXT)
                    else:
                        await ws.send_bytes(data)
                    if frame.kind == "big" and len(data) > MAX_BYTES:
                        closing_frame = True
                    sent += 1
                    stats.frames += 1
            sentinel = f"sentinel-{uuid.uuid4().hex}"
            if not ws.closed:
                failed_by_protocol = failed_by_protocol or closing_frame
                await ws.send_bytes(
                    json.dumps({"action": "server/info", "requestId": sentinel}).encode()
                )
                sent += 1
                stats.frames += 1
        except ConnectionError:
            pass
        replies = 0
        got_sentinel = False
        deadline = time.monotonic() + 15
        while not (got_sentinel and replies >= sent):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stats.crashed += 1
                raise AssertionError(
                    f"{who}: {replies} replies to {sent} frames and no close within 15 s"
                )
            try:
                message = await ws.receive(timeout=remaining)
            except TimeoutError:
                continue
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
            ):
                code = (
                    ws.close_code if message.type is not aiohttp.WSMsgType.CLOSE else message.data
                )
                stats.closes[int(code or 0)] += 1
                if code == 1006 and failed_by_protocol:
                    # RFC 6455 7.1.7: after a frame the server cannot read (bad UTF-8, too
                    # big) it fails the connection; what the client sent after it may make the
                    # TCP close a reset, which loses the close frame.
                    return
                if code not in CLOSE_CODES:
                    stats.crashed += 1
                    raise AssertionError(f"{who}: closed with {code} {message.extra!r}")
                if code in (1007, 1009) and not closing_frame:
                    raise AssertionError(f"{who}: closed with {code} without a frame that asks")
                return
            assert message.type is aiohttp.WSMsgType.TEXT, message
            body = json.loads(message.data)
            assert isinstance(body, dict), body
            if "status" not in body:
                assert "subscriptionId" in body, body  # a push
                continue
            replies += 1
            if body.get("requestId") == sentinel:
                got_sentinel = True
            action = body.get("action") if body.get("action") in ACTIONS else "other"
            if body["status"] == "error":
                stats.replies[f"error {body['code']}"] += 1
                stats.by_action[f"{action} {body['code']}"] += 1
                assert body["code"] in ERROR_CODES, body
                assert isinstance(body["error"], str), body
                continue
            assert body["status"] == "success", body
            stats.replies["success"] += 1
            stats.by_action[f"{action} ok"] += 1
            if body["action"] == "notification/insert":
                stats.notifications.add(body["notification"]["id"])
            elif body["action"] == "command/insert":
                stats.commands.add(body["command"]["id"])
        assert replies == sent, f"{who}: {replies} replies to {sent} frames"


# -- the run -------------------------------------------------------------------------------


async def _world(gateway: GatewayProcess) -> World:
    async with aiohttp.ClientSession() as http:

        async def call(method: str, path: str, token: str | None, body: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.request(method, gateway.url + path, json=body, headers=headers) as r:
                assert r.status < 300, await r.text()
                return await r.json() if r.status != 204 else None

        admin = (
            await call(
                "POST", "/v1/auth/login", None, {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
        )["access_token"]
        network = (await call("POST", "/v1/networks", admin, {"name": "fuzz"}))["id"]
        await call("POST", "/v1/device-types", admin, {"name": "sensor"})  # device type 1
        await call(
            "PUT", "/v1/devices/d1", admin, {"name": "d1", "networkId": network, "deviceTypeId": 1}
        )
        await call("PUT", "/v1/devices/d2", admin, {"name": "d2", "networkId": network})
        await call(
            "POST",
            "/v1/users",
            admin,
            {
                "name": "client",
                "email": "client@example.com",
                "password": "client-password",
                "role": "client",
                "networkIds": [network],
            },
        )
        client = (
            await call(
                "POST",
                "/v1/auth/login",
                None,
                {"email": "client@example.com", "password": "client-password"},
            )
        )["access_token"]
    return World(
        url=gateway.ws_url,
        tokens={"admin": admin, "client": client, "bad": admin[:-4] + "AAAA"},
    )


async def _stored(database_url: str, table: str, ids: set[int]) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE id = any($1::bigint[])", list(ids)
        )
        return count
    finally:
        await conn.close()


async def _all_stored(database_url: str, stats: Stats) -> tuple[int, int]:
    deadline = time.monotonic() + 10
    while True:
        notifications = await _stored(database_url, "notifications", stats.notifications)
        commands = await _stored(database_url, "commands", stats.commands)
        done = notifications == len(stats.notifications) and commands == len(stats.commands)
        if done or time.monotonic() > deadline:
            return notifications, commands
        await asyncio.sleep(0.05)


def test_websocket_fuzz(database_url: str, clean_db: str, tmp_path: Path) -> None:
    gateway = GatewayProcess(
        "ws-fuzz",
        gateway_env(
            database_url=clean_db,
            port=free_port(),
            instance_id=f"fuzz-{uuid.uuid4().hex[:6]}",
            data_dir=tmp_path / "data",
        ),
        tmp_path,
    )
    gateway.start()
    stats = Stats()
    try:
        asyncio.run(gateway.wait_ready())
        world = asyncio.run(_world(gateway))

        @settings(
            max_examples=EXAMPLES,
            derandomize=RANDOM is None,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(plans())
        def session(plan: tuple[str, list[Frame]]) -> None:
            stats.examples += 1
            asyncio.run(closed_after(play(world, plan[0], plan[1], stats)))

        session()
        notifications, commands = asyncio.run(_all_stored(clean_db, stats))
    finally:
        gateway.stop()
    tracebacks = gateway.stderr().count("Traceback")
    record(
        f"websocket fuzz: {stats.examples} sessions, {stats.frames} frames, "
        f"{stats.crashed} crashed sessions, {tracebacks} tracebacks; replies "
        f"{dict(sorted(stats.replies.items()))}; closes {dict(sorted(stats.closes.items()))}; "
        f"acknowledged {len(stats.notifications)} notifications / {len(stats.commands)} commands, "
        f"stored {notifications} / {commands}"
    )
    print(dict(sorted(stats.by_action.items())))
    assert tracebacks == 0, gateway.logs(lines=200)
    assert stats.crashed == 0
    assert notifications == len(stats.notifications)
    assert commands == len(stats.commands)
    assert stats.frames >= MIN_FRAMES
