"""Hostile requests that are well-formed HTTP and valid against the OpenAPI document, yet probe
what the schema cannot say: values PostgreSQL or Python refuse later on, and rights.

Every refusal is a precise 4xx with the error body, never a 500.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.app import create_app
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    AppFactory,
    bearer,
    login,
    make_settings,
)
from tests.realtime.helpers import BOB_EMAIL, PASSWORD, World, build_world, mint, rest
from tests.support.http import expect_error
from tests.support.servers import with_database

LIKE_ERROR = "{}: a LIKE pattern must not end with a lone backslash (write \\\\ for one)"


@pytest.fixture
async def world(client: Any) -> World:
    return await build_world(client)


async def dialect_error(response: Any, status: int, message: str) -> None:
    """The DeviceHive dialect's error body: ``{error, message, request_id}``."""
    text = await response.text()
    assert response.status == status, text
    body = await response.json()
    assert body == {
        "error": status,
        "message": message,
        "request_id": response.headers["X-Request-ID"],
    }, body


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/device-types?namePattern=%5C", "namePattern"),
        ("/v1/device-types?namePattern=therm%25%5C", "namePattern"),
        ("/v1/device-types?namePattern=%5C%5C%5C", "namePattern"),
        ("/api/rest/network?namePattern=%5C", "namePattern"),
        ("/api/rest/devicetype?namePattern=%25%5C", "namePattern"),
        ("/api/rest/user?loginPattern=%5C", "loginPattern"),
    ],
)
async def test_a_like_pattern_ending_in_an_escape_is_a_422(
    world: World, path: str, field: str
) -> None:
    # PostgreSQL refuses such a pattern when a row makes the matcher reach its end (here the
    # device type "thermometer"): it was a 500, depending on the data.
    response = await world.client.get(path, headers=bearer(world.admin))
    check = dialect_error if path.startswith("/api/rest/") else expect_error
    await check(response, 422, LIKE_ERROR.format(field))


async def test_an_escaped_backslash_is_a_literal_one(world: World) -> None:
    headers = bearer(world.admin)
    response = await world.client.post(
        "/v1/device-types", json={"name": "back\\slash"}, headers=headers
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    response = await world.client.get(
        "/v1/device-types", params={"namePattern": "back\\\\%"}, headers=headers
    )
    assert response.status == 200, await response.text()
    assert await response.json() == {"deviceTypes": [created]}
    response = await world.client.get(
        "/api/rest/user", params={"loginPattern": "%\\%%"}, headers=headers
    )
    assert response.status == 200, await response.text()
    assert await response.json() == []


# "²" and "٣" are digits to str.isdigit() (and "٣" to the regex \d); int() refuses "²".
UNICODE_DIGITS = ["%C2%B2", "1,%C2%B2", "%D9%A3"]


@pytest.mark.parametrize("ids", UNICODE_DIGITS)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/rest/device/notification/poll?waitTimeout=0&networkIds=", "networkIds"),
        ("/api/rest/device/command/poll?waitTimeout=0&deviceTypeIds=", "deviceTypeIds"),
    ],
)
async def test_dialect_id_lists_take_ascii_digits_only(
    world: World, path: str, field: str, ids: str
) -> None:
    response = await world.client.get(path + ids, headers=bearer(world.admin))
    await dialect_error(
        response, 422, f"{field}: must be a comma-separated list of ids (at most 1000)"
    )


@pytest.mark.parametrize("session_id", ["%C2%B2", "%EF%BC%91", "-1", "+1"])
async def test_a_session_id_that_is_no_number_is_not_found(world: World, session_id: str) -> None:
    response = await world.client.delete(f"/v1/sessions/{session_id}", headers=bearer(world.admin))
    await expect_error(response, 404, "Session not found on this instance")


# -- device writes decide on the device as it stands, not on a cached copy -----------------


async def test_a_client_cannot_take_back_a_device_moved_out_of_its_network(
    world: World, make_client: AppFactory
) -> None:
    # Another instance whose bus did not carry the move (Redis down, a lost message): its
    # cache still puts d1 in alice's network until its next reconciliation.
    other = await make_client(reconcile_interval=3600.0)
    assert (await rest(other, "GET", "/v1/devices/d1", world.alice, 200))["networkId"] == world.n1
    moved = await rest(
        world.client, "PUT", "/v1/devices/d1", world.admin, 200, {"networkId": world.n2}
    )
    assert moved["networkId"] == world.n2

    for method, path, body in (
        ("PUT", "/v1/devices/d1", {"name": "mine"}),
        ("PUT", "/v1/devices/d1", {"name": "mine", "networkId": world.n1}),
        ("DELETE", "/v1/devices/d1", None),
    ):
        response = await other.request(method, path, json=body, headers=bearer(world.alice))
        await expect_error(response, 403, "Device d1 is outside the token's scope")
    response = await other.put(
        "/api/rest/device/d1", json={"name": "mine"}, headers=bearer(world.alice)
    )
    await dialect_error(response, 403, "Device d1 is outside the token's scope")

    assert await rest(world.client, "GET", "/v1/devices/d1", world.admin, 200) == moved
    assert await rest(world.client, "GET", "/v1/devices/d1", world.bob, 200) == moved


async def test_a_device_deleted_elsewhere_is_created_anew_not_updated(
    world: World, make_client: AppFactory
) -> None:
    other = await make_client(reconcile_interval=3600.0)
    await rest(other, "GET", "/v1/devices/d3", world.alice, 200)
    await rest(world.client, "DELETE", "/v1/devices/d3", world.admin, 204)
    response = await other.delete("/v1/devices/d3", headers=bearer(world.alice))
    await expect_error(response, 404, "Device d3 not found")
    created = await rest(other, "PUT", "/v1/devices/d3", world.alice, 201, {"name": "again"})
    assert created == {
        "id": "d3",
        "name": "again",
        "data": None,
        "networkId": world.n1,
        "deviceTypeId": None,
        "isBlocked": False,
    }


# -- e-mail addresses: PostgreSQL's lower() is what identifies an account ------------------


@pytest.mark.parametrize(
    # Python lowers a final capital sigma to the final small sigma (U+03C2) and "İ" to "i" and a
    # combining dot; PostgreSQL's lower(), which indexes the address, to U+03C3 and "i" (UTF-8).
    "email",
    ["ΣΟΦΙΑΣ@example.com", "İnci@example.com"],
)
async def test_a_user_logs_in_with_the_very_address_they_were_given(
    world: World, email: str
) -> None:
    user = await rest(
        world.client,
        "POST",
        "/v1/users",
        world.admin,
        201,
        {"name": "n", "email": email, "password": "client-password", "role": "client"},
    )
    for name in (email, f"  {email} ", email.upper()):
        response = await world.client.post(
            "/v1/auth/login", json={"email": name, "password": "client-password"}
        )
        assert response.status == 200, (name, await response.text())
        assert (await response.json())["user_id"] == user["id"]
    response = await world.client.post(
        "/api/rest/token", json={"login": email, "password": "client-password"}
    )
    assert response.status == 201, await response.text()


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("admin\u200b@example.com", "U+200B"),  # zero-width space
        ("\ufeffadmin@example.com", "U+FEFF"),  # byte-order mark
        ("admin@exam\u202eple.com", "U+202E"),  # right-to-left override
        ("admin@example.com\U000e0041", "U+E0041"),  # tag character, outside the BMP
        ("ad\x7fmin@example.com", "U+007F"),
        ("admin@exa\u2066mple.com", "U+2066"),  # left-to-right isolate
    ],
)
async def test_an_address_with_an_invisible_character_is_refused(
    world: World, email: str, code: str
) -> None:
    """Accepted before: a second account that reads exactly like the first one."""
    body = {"name": "n", "email": email, "password": "client-password", "role": "client"}
    response = await world.client.post("/v1/users", json=body, headers=bearer(world.admin))
    await expect_error(
        response, 422, f"email: must not contain {code} (a control or invisible character)"
    )


# -- listings: a page is the first ``limit`` items the caller may see ----------------------


async def walk_devices(world: World, token: str, limit: int) -> list[str]:
    """GET /v1/devices page by page, as documented: the last id is the next cursor, and a
    page shorter than the limit is the last."""
    seen: list[str] = []
    cursor = ""
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = (await rest(world.client, "GET", "/v1/devices" + query, token, 200))["devices"]
        seen += [device["id"] for device in page]
        if len(page) < limit:
            return seen
        cursor = page[-1]["id"]


async def test_device_pages_are_not_cut_short_by_a_narrowed_token(world: World) -> None:
    narrowed = await mint(world.client, world.alice, deviceIds=["d3"])
    for limit in (1, 2, 1000):
        assert await walk_devices(world, narrowed, limit) == ["d3"]


async def test_device_pages_are_not_cut_short_by_device_type_limits(world: World) -> None:
    await rest(
        world.client,
        "PUT",
        f"/v1/users/{world.alice_id}/device-types",
        world.admin,
        200,
        {"allDeviceTypesAvailable": False, "deviceTypeIds": [2]},
    )
    for limit in (1, 2, 1000):
        assert await walk_devices(world, world.alice, limit) == ["d3"]
    # An administrator's pages, unfiltered, for comparison.
    assert await walk_devices(world, world.admin, 1) == ["d1", "d2", "d3"]


# -- users: somebody stays able to administer ----------------------------------------------

LAST_ADMIN = "User {} is the last active administrator; make another one first"


async def test_the_last_active_administrator_cannot_be_demoted_disabled_or_deleted(
    world: World,
) -> None:
    headers = bearer(world.admin)
    for method, body in (
        ("PATCH", {"role": "client"}),
        ("PATCH", {"status": "disabled"}),
        ("PATCH", {"name": "still here", "role": "client", "status": "disabled"}),
        ("DELETE", None),
    ):
        response = await world.client.request(method, "/v1/users/1", json=body, headers=headers)
        await expect_error(response, 409, LAST_ADMIN.format(1))
    me = await rest(world.client, "GET", "/v1/auth/me", world.admin, 200)
    assert (me["name"], me["role"], me["status"]) == ("admin", "admin", "active")
    # Changes that leave it an active administrator go through.
    await rest(world.client, "PATCH", "/v1/users/1", world.admin, 200, {"name": "root"})
    await rest(world.client, "PATCH", "/v1/users/1", world.admin, 200, {"role": "admin"})


async def test_an_administrator_steps_down_once_another_is_active(world: World) -> None:
    await rest(
        world.client, "PATCH", f"/v1/users/{world.bob_id}", world.admin, 200, {"role": "admin"}
    )
    # A disabled administrator does not count.
    await rest(
        world.client, "PATCH", f"/v1/users/{world.bob_id}", world.admin, 200, {"status": "disabled"}
    )
    response = await world.client.patch(
        "/v1/users/1", json={"role": "client"}, headers=bearer(world.admin)
    )
    await expect_error(response, 409, LAST_ADMIN.format(1))
    await rest(
        world.client, "PATCH", f"/v1/users/{world.bob_id}", world.admin, 200, {"status": "active"}
    )
    demoted = await rest(world.client, "PATCH", "/v1/users/1", world.admin, 200, {"role": "client"})
    assert demoted["role"] == "client"
    response = await world.client.get("/v1/auth/me", headers=bearer(world.admin))
    await expect_error(response, 401, "Token revoked")


async def test_two_administrators_demoting_each_other_at_once_leave_one(world: World) -> None:
    await rest(
        world.client, "PATCH", f"/v1/users/{world.bob_id}", world.admin, 200, {"role": "admin"}
    )
    bob = (await login(world.client, BOB_EMAIL, PASSWORD))["access_token"]
    responses = await asyncio.gather(
        world.client.patch(
            f"/v1/users/{world.bob_id}", json={"status": "disabled"}, headers=bearer(world.admin)
        ),
        world.client.patch("/v1/users/1", json={"status": "disabled"}, headers=bearer(bob)),
    )
    answers = sorted([(r.status, (await r.json()).get("message")) for r in responses])
    # The second is refused as the last administrator; or, should the first have finished
    # before the second was even authenticated, as revoked (the first's disable revoked it).
    assert answers[0][0] == 200 and answers[1] in (
        (409, LAST_ADMIN.format(1)),
        (409, LAST_ADMIN.format(world.bob_id)),
        (401, "Token revoked"),
    ), answers
    users = await rest(world.client, "GET", "/v1/users", await admin_token(world), 200)
    active_admins = [
        user["id"]
        for user in users["users"]
        if (user["role"], user["status"]) == ("admin", "active")
    ]
    assert len(active_admins) == 1


async def admin_token(world: World) -> str:
    """An access token of whichever administrator is still active."""
    for email in (ADMIN_EMAIL, BOB_EMAIL):
        response = await world.client.post(
            "/v1/auth/login",
            json={"email": email, "password": ADMIN_PASSWORD if email == ADMIN_EMAIL else PASSWORD},
        )
        if response.status == 200:
            token: str = (await response.json())["access_token"]
            return token
        await response.read()
    raise AssertionError("no administrator can log in")


async def test_the_dialect_lists_every_device_past_the_ten_thousandth(
    world: World, clean_db: str
) -> None:
    # 10,000 more devices in network n1, beside d1, d2 and d3: 10,003 in all.
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            """INSERT INTO devices (id, name, network_id)
               SELECT 'z' || lpad(i::text, 5, '0'), 'z' || lpad(i::text, 5, '0'), $1
               FROM generate_series(0, 9999) AS i""",
            world.n1,
        )
    finally:
        await conn.close()
    headers = bearer(world.admin)

    async def ids(query: str) -> list[str]:
        response = await world.client.get("/api/rest/device" + query, headers=headers)
        assert response.status == 200, await response.text()
        return [device["id"] for device in await response.json()]

    assert await ids("?skip=10000&take=1000") == ["z09997", "z09998", "z09999"]
    assert await ids("?name=z09999") == ["z09999"]
    assert await ids(f"?networkId={world.n1}&skip=10000") == ["z09998", "z09999"]
    assert await ids("?sortField=name&sortOrder=DESC&take=2") == ["z09999", "z09998"]
    assert await ids("?sortOrder=DESC&skip=10002") == ["d1"]
    # network/get lists a network's devices (at most 10,000) within the token's deviceIds.
    narrowed = await mint(world.client, world.admin, deviceIds=["z09999"])
    response = await world.client.get(f"/api/rest/network/{world.n1}", headers=bearer(narrowed))
    assert response.status == 200, await response.text()
    assert [device["id"] for device in (await response.json())["devices"]] == ["z09999"]
    peer = await world.peer(world.admin)
    try:
        listed = await peer.ok("device/list", skip=10_000)
        assert [device["id"] for device in listed["devices"]] == ["z09997", "z09998", "z09999"]
    finally:
        await peer.close()


# -- a client of network n1 reaches nothing of network n2, through any route --------------

OUTSIDE_D2 = "Device d2 is outside the token's scope"
NOT_MANAGER = "Missing permission: ManageUser"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/v1/networks/{n2}", None, 403, "Network {n2} is outside the token's scope"),
        ("GET", "/v1/devices/d2", None, 403, OUTSIDE_D2),
        ("PUT", "/v1/devices/d2", {"name": "mine"}, 403, OUTSIDE_D2),
        ("DELETE", "/v1/devices/d2", None, 403, OUTSIDE_D2),
        (
            "PUT",
            "/v1/devices/d1",
            {"networkId": "{n2}"},
            403,
            "Network {n2} is outside the token's scope",
        ),
        (
            "PUT",
            "/v1/devices/new",
            {"networkId": "{n2}"},
            403,
            "Network {n2} is outside the token's scope",
        ),
        ("GET", "/v1/devices/d2/notifications", None, 403, OUTSIDE_D2),
        ("GET", "/v1/devices/d2/commands", None, 403, OUTSIDE_D2),
        ("GET", "/v1/devices/d2/notifications/poll?waitTimeout=0", None, 403, OUTSIDE_D2),
        ("GET", "/v1/devices/d2/commands/poll?waitTimeout=0", None, 403, OUTSIDE_D2),
        ("GET", "/v1/users/{bob}", None, 403, NOT_MANAGER),
        ("PATCH", "/v1/users/{bob}", {"name": "x"}, 403, NOT_MANAGER),
        ("GET", "/v1/users/{bob}/device-types", None, 403, NOT_MANAGER),
        ("PUT", "/v1/users/{alice}/networks/{n2}", None, 403, NOT_MANAGER),
        (
            "PATCH",
            "/v1/users/{alice}",
            {"networkIds": ["{n2}"]},
            403,
            "Changing networkIds needs ManageUser",
        ),
        ("POST", "/v1/auth/revoke", {"user_id": "{bob}"}, 403, NOT_MANAGER),
        (
            "POST",
            "/v1/auth/token/create",
            {"user_id": "{bob}"},
            403,
            "Minting a token for another user needs ManageUser",
        ),
        (
            "POST",
            "/v1/auth/token/create",
            {"deviceIds": ["d2"]},
            403,
            "Requested deviceIds exceed what the caller and the user may reach: d2",
        ),
        ("GET", "/v1/sessions", None, 403, NOT_MANAGER),
        ("GET", "/api/rest/device/d2", None, 403, OUTSIDE_D2),
        ("PUT", "/api/rest/device/d2", {"name": "mine"}, 403, OUTSIDE_D2),
        ("DELETE", "/api/rest/device/d2", None, 403, OUTSIDE_D2),
        ("GET", "/api/rest/device/d2/notification", None, 403, OUTSIDE_D2),
        ("GET", "/api/rest/device/d2/notification/1", None, 403, OUTSIDE_D2),
        ("POST", "/api/rest/device/d2/notification", {"notification": "x"}, 403, OUTSIDE_D2),
        ("GET", "/api/rest/device/d2/command", None, 403, OUTSIDE_D2),
        ("POST", "/api/rest/device/d2/command", {"command": "x"}, 403, OUTSIDE_D2),
        ("PUT", "/api/rest/device/d2/command/1", {"status": "x"}, 403, OUTSIDE_D2),
        ("GET", "/api/rest/device/d2/notification/poll?waitTimeout=0", None, 403, OUTSIDE_D2),
        (
            "GET",
            "/api/rest/device/command/poll?waitTimeout=0&networkIds={n2}",
            None,
            403,
            "networkIds outside the token's scope: {n2}",
        ),
        ("GET", "/api/rest/network/{n2}", None, 403, "Network {n2} is outside the token's scope"),
        ("GET", "/api/rest/user/{bob}", None, 403, NOT_MANAGER),
        ("GET", "/api/rest/user", None, 403, NOT_MANAGER),
        (
            "POST",
            "/api/rest/token/create",
            {"networkIds": ["{n2}"]},
            403,
            "Requested networkIds exceed what the caller and the user may reach: {n2}",
        ),
    ],
)
async def test_a_client_reaches_nothing_of_another_network(
    world: World, method: str, path: str, body: Any, status: int, message: str
) -> None:
    names = {"n2": world.n2, "bob": world.bob_id, "alice": world.alice_id}

    def filled(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            return names[value[1:-1]]
        if isinstance(value, list):
            return [filled(item) for item in value]
        if isinstance(value, dict):
            return {key: filled(item) for key, item in value.items()}
        return value

    response = await world.client.request(
        method, path.format(**names), json=filled(body), headers=bearer(world.alice)
    )
    if path.startswith("/api/rest"):
        await dialect_error(response, status, message.format(**names))
    else:
        await expect_error(response, status, message.format(**names))


async def test_client_listings_hold_only_the_clients_network(world: World) -> None:
    async def get(path: str) -> Any:
        return await rest(world.client, "GET", path, world.alice, 200)

    assert [n["id"] for n in (await get("/v1/networks"))["networks"]] == [world.n1]
    assert [d["id"] for d in (await get("/v1/devices"))["devices"]] == ["d1", "d3"]
    assert [n["id"] for n in await get("/api/rest/network")] == [world.n1]
    assert [d["id"] for d in await get("/api/rest/device")] == ["d1", "d3"]
    assert await get(f"/api/rest/device?networkId={world.n2}") == []
    assert await get("/api/rest/device?name=d2") == []


# -- history sorted by name: PostgreSQL and the merge of pending items agree on the order --


@pytest.fixture
async def linguistic_db(clean_db: str) -> AsyncIterator[str]:
    """A database whose default collation is linguistic (ICU en-US: "a" < "B"), as a server
    initialized in an en_US locale has; skipped where the server has no ICU."""
    name = f"gateway_icu_{uuid.uuid4().hex[:8]}"
    server = with_database(clean_db, "postgres")
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(
            f"""CREATE DATABASE "{name}" TEMPLATE template0 ENCODING 'UTF8'
                LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"""
        )
    except asyncpg.PostgresError as exc:
        pytest.skip(f"no ICU collation on this server: {exc}")
    finally:
        await conn.close()
    try:
        yield with_database(clean_db, name)
    finally:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def test_history_pages_by_name_skip_nothing_under_a_linguistic_collation(
    linguistic_db: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    gateway = await aiohttp_client(create_app(make_settings(linguistic_db, tmp_path)))
    admin = (await login(gateway, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"]
    network = (await rest(gateway, "POST", "/v1/networks", admin, 201, {"name": "n"}))["id"]
    await rest(gateway, "PUT", "/v1/devices/c1", admin, 201, {"networkId": network})
    for name in ("a", "B", "c"):
        await rest(
            gateway, "POST", "/api/rest/device/c1/notification", admin, 201, {"notification": name}
        )
    conn = await asyncpg.connect(linguistic_db)
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while await conn.fetchval("SELECT count(*) FROM notifications") < 3:
            assert asyncio.get_running_loop().time() < deadline, "never written"
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    path = "/api/rest/device/c1/notification?sortField=notification"
    whole = [item["notification"] for item in await rest(gateway, "GET", path, admin, 200)]
    paged = [
        item["notification"]
        for skip in range(3)
        for item in await rest(gateway, "GET", f"{path}&take=1&skip={skip}", admin, 200)
    ]
    assert paged == whole == ["B", "a", "c"]


COMPOSED = "ren\u00e9@example.com"  # "é" as one code point (NFC)
DECOMPOSED = "rene\u0301@example.com"  # "e" and a combining acute accent (NFD): the same text


async def test_an_address_in_another_normalization_form_is_the_same_account(
    world: World,
) -> None:
    created = await rest(
        world.client,
        "POST",
        "/v1/users",
        world.admin,
        201,
        {"name": "René", "email": DECOMPOSED, "password": "client-password", "role": "client"},
    )
    assert created["email"] == COMPOSED
    response = await world.client.post(
        "/v1/users",
        json={
            "name": "x",
            "email": COMPOSED.upper(),
            "password": "client-password",
            "role": "client",
        },
        headers=bearer(world.admin),
    )
    await expect_error(response, 409, f"a user with email {COMPOSED.upper()!r} already exists")
    for name in (COMPOSED, DECOMPOSED, DECOMPOSED.upper()):
        response = await world.client.post(
            "/v1/auth/login", json={"email": name, "password": "client-password"}
        )
        assert response.status == 200, (name, await response.text())
        assert (await response.json())["user_id"] == created["id"]
    # And one account to the login throttle: failures in one form count against the other.
    for _ in range(5):
        response = await world.client.post(
            "/v1/auth/login", json={"email": COMPOSED, "password": "wrong-password"}
        )
        await expect_error(response, 401, "Invalid email or password")
    response = await world.client.post(
        "/v1/auth/login", json={"email": DECOMPOSED, "password": "client-password"}
    )
    await expect_error(response, 429, "Too many failed logins; try again later")
