"""The admin commands, each run as ``python -m gateway ...`` against a running gateway that
shares its configuration (PostgreSQL and Redis): what the CLI does, the gateway and its live
sessions see at once."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.support.processes import (
    ADMIN_EMAIL,
    REPO_ROOT,
    GatewayProcess,
    gateway_env,
)
from tests.support.servers import free_port

WAIT = 5.0
PASSWORD = "cli-password-1"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return orjson.loads(self.out)

    def lines(self) -> list[Any]:
        return [orjson.loads(line) for line in self.out.splitlines()]


@dataclass
class Env:
    gateway: GatewayProcess
    http: aiohttp.ClientSession

    async def cli(self, *args: str, stdin: str = "") -> Result:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *args,
            env=self.gateway.env,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
        except TimeoutError:
            process.kill()
            out, err = await process.communicate()
            raise AssertionError(f"gateway {' '.join(args)} hung: {err.decode()}") from None
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str, stdin: str = "") -> Result:
        result = await self.cli(*args, stdin=stdin)
        assert result.code == 0, result
        assert result.err == "", result
        return result

    async def login(self, email: str, password: str, expected: int = 200) -> dict[str, Any]:
        async with self.http.post(
            self.gateway.url + "/v1/auth/login", json={"email": email, "password": password}
        ) as response:
            body: dict[str, Any] = await response.json()
            assert response.status == expected, body
            return body

    async def socket(self, token: str) -> aiohttp.ClientWebSocketResponse:
        ws = await self.http.ws_connect(
            self.gateway.ws_url, headers={"Authorization": f"Bearer {token}"}
        )
        await ws.send_json({"action": "server/info", "requestId": 1})
        assert (await ws.receive_json(timeout=WAIT))["status"] == "success"
        return ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str | None]:
    message = await ws.receive(timeout=WAIT)
    assert message.type is aiohttp.WSMsgType.CLOSE, message
    return int(message.data), message.extra


@pytest.fixture
async def env(
    clean_db: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Env]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    gateway = GatewayProcess(
        "cli",
        gateway_env(
            database_url=clean_db,
            port=free_port(),
            instance_id=f"served-{uuid.uuid4().hex[:6]}",
            data_dir=data_dir,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            reconcile_interval="60s",  # a close within WAIT came over the bus, not from here
        ),
        tmp_path,
    )
    gateway.start()
    try:
        await gateway.wait_ready()
        async with aiohttp.ClientSession() as http:
            yield Env(gateway, http)
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_user_add_then_the_user_logs_in_over_rest(env: Env) -> None:
    result = await env.ok("user", "add", "Ann@Example.com", "--name", "Ann", stdin=PASSWORD + "\n")
    user = result.json()
    assert {k: user[k] for k in ("name", "email", "role", "status", "networkIds")} == {
        "name": "Ann",
        "email": "Ann@Example.com",
        "role": "client",
        "status": "active",
        "networkIds": [],
    }
    pair = await env.login("ann@example.com", PASSWORD)
    assert pair["user_id"] == user["id"]
    admin = await env.ok("user", "add", "root2@example.com", "--role", "admin", stdin=PASSWORD)
    assert admin.json()["role"] == "admin"


async def test_user_add_refuses_what_the_rest_api_refuses(env: Env) -> None:
    await env.ok("user", "add", "bo@example.com", stdin=PASSWORD)
    for args, stdin, message in [
        (("bo@example.com",), PASSWORD, "gateway: a user with email 'bo@example.com' already"),
        (("not-an-email",), PASSWORD, "gateway: email: must match"),
        (("short@example.com",), "short\n", "gateway: password: "),
        (("empty@example.com",), "", "gateway: password: "),
    ]:  # fmt: skip
        result = await env.cli("user", "add", *args, stdin=stdin)
        assert result.code == 1, result
        assert result.out == ""
        assert len(result.err.splitlines()) == 1 and result.err.startswith(message), result
    # A password is never an argument.
    result = await env.cli("user", "add", "c@example.com", "--password", PASSWORD)
    assert result.code == 2
    assert result.err == "gateway: unrecognized arguments: --password (see gateway --help)\n"


async def test_user_list(env: Env) -> None:
    await env.ok("user", "add", "dee@example.com", stdin=PASSWORD)
    users = (await env.ok("user", "list")).lines()
    assert [(u["email"], u["role"]) for u in users] == [
        (ADMIN_EMAIL, "admin"),
        ("dee@example.com", "client"),
    ]
    assert all("password" not in str(u) for u in users)


async def test_user_disable_closes_the_users_live_socket_with_4003(env: Env) -> None:
    user = (await env.ok("user", "add", "eve@example.com", stdin=PASSWORD)).json()
    ws = await env.socket((await env.login("eve@example.com", PASSWORD))["access_token"])
    result = await env.ok("user", "disable", "eve@example.com")
    assert await closed_with(ws) == (4003, "token revoked: user disabled")
    body = result.json()
    assert body["user"]["id"] == user["id"] and body["user"]["status"] == "disabled"
    assert body["revocation"] == {
        "sessions_closed": 1,
        "instances": [{"instance": env.gateway.instance_id, "sessions_closed": 1}],
    }
    await env.login("eve@example.com", PASSWORD, expected=403)


async def test_user_passwd_by_id(env: Env) -> None:
    user = (await env.ok("user", "add", "fay@example.com", stdin=PASSWORD)).json()
    ws = await env.socket((await env.login("fay@example.com", PASSWORD))["access_token"])
    await env.ok("user", "passwd", str(user["id"]), stdin="a-new-password\n")
    assert await closed_with(ws) == (4003, "token revoked: password changed")
    await env.login("fay@example.com", PASSWORD, expected=401)
    await env.login("fay@example.com", "a-new-password")


async def test_network_add_and_member_add(env: Env) -> None:
    await env.ok("user", "add", "gus@example.com", stdin=PASSWORD)
    network = (await env.ok("network", "add", "plant-7", "--description", "north")).json()
    assert network == {"id": network["id"], "name": "plant-7", "description": "north"}
    user = (await env.ok("member", "add", "gus@example.com", "plant-7")).json()
    assert user["networkIds"] == [network["id"]]
    token = (await env.login("gus@example.com", PASSWORD))["access_token"]
    async with env.http.get(
        env.gateway.url + "/v1/networks", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert (await response.json())["networks"] == [network]
    result = await env.cli("member", "add", "gus@example.com", "no-such-network")
    assert (result.code, result.err) == (1, "gateway: no network 'no-such-network'\n")


async def test_token_mint_then_revoke_by_jti(env: Env) -> None:
    await env.ok("network", "add", "n1")
    pair = (
        await env.ok(
            "token", "mint", "--user", ADMIN_EMAIL, "--actions", "GetDevice", "GetNetwork",
            "--network-ids", "1", "--device-ids", "d1", "--expires-in", "30d",
        )
    ).json()  # fmt: skip
    assert set(pair) == {
        "access_token", "refresh_token", "token_type", "expires_in", "issued_at", "expires_at",
        "user_id",
    }  # fmt: skip
    assert pair["expires_in"] == 30 * 86400
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    async with env.http.get(env.gateway.url + "/v1/auth/tokenInfo", headers=headers) as response:
        payload = (await response.json())["payload"]
    assert sorted(payload["actions"]) == [2, 3]
    ws = await env.socket(pair["access_token"])
    receipt = (await env.ok("revoke", "--jti", payload["jti"])).json()
    assert receipt["sessions_closed"] == 1
    assert await closed_with(ws) == (4003, "token revoked: revoked by an administrator")
    async with env.http.get(env.gateway.url + "/v1/auth/tokenInfo", headers=headers) as response:
        assert response.status == 401


async def test_token_mint_never_exceeds_the_users_rights(env: Env) -> None:
    await env.ok("user", "add", "hal@example.com", stdin=PASSWORD)
    result = await env.cli("token", "mint", "--user", "hal@example.com", "--actions", "ManageUser")
    assert (result.code, result.err) == (
        1,
        "gateway: Requested actions exceed the user's rights: ManageUser\n",
    )
    result = await env.cli("token", "mint", "--user", "nobody@example.com")
    assert (result.code, result.err) == (1, "gateway: no user 'nobody@example.com'\n")
    result = await env.cli("token", "mint", "--user", ADMIN_EMAIL, "--expires-in", "soon")
    assert result.code == 1 and result.err.startswith("gateway: --expires-in: not a duration")


async def test_revoke_user_and_device(env: Env) -> None:
    await env.ok("user", "add", "ivy@example.com", stdin=PASSWORD)
    ws = await env.socket((await env.login("ivy@example.com", PASSWORD))["access_token"])
    receipt = (await env.ok("revoke", "--user", "ivy@example.com")).json()
    assert receipt["sessions_closed"] == 1
    assert await closed_with(ws) == (4003, "token revoked: revoked by an administrator")
    receipt = (await env.ok("revoke", "--device", "d9")).json()
    assert receipt == {
        "sessions_closed": 0,
        "instances": [{"instance": env.gateway.instance_id, "sessions_closed": 0}],
    }
    result = await env.cli("revoke")
    assert result.code == 2
    assert result.err.startswith("gateway revoke: one of the arguments --user --jti --device")


@pytest.mark.parametrize(
    "command",
    [
        ["user", "add"],
        ["user", "list"],
        ["user", "disable"],
        ["user", "passwd"],
        ["network", "add"],
        ["member", "add"],
        ["token", "mint"],
        ["revoke"],
    ],
)
async def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *command, "--help",
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err
    assert out.decode().startswith(f"usage: gateway {' '.join(command)} ")
    assert "GATEWAY_" in out.decode()


async def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "user", "list",
        "--database-url", f"postgresql://gw:hunter2@127.0.0.1:{port}/gw",
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_JWT_SECRET": "x" * 40},
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 2
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"gateway: configuration error: cannot connect to PostgreSQL at "
        f"postgresql://gw:***@127.0.0.1:{port}/gw"
    ), lines
    assert b"hunter2" not in err and out == b""
