"""The web console end to end, in a real headless Chromium against a real gateway: logging in,
the devices, a device's live notifications and commands, hostile payloads shown as text, token
expiry, a lost connection, a revocation and a phone-width screen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from gateway.client import GatewayClient
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, AppFactory
from tests.realtime.helpers import ALICE_EMAIL, PASSWORD, World, build_world, rest

WAIT = 15.0


class Page:
    """The console in the browser; every WebDriver call runs in a thread so that the gateway,
    served by this test's event loop, keeps answering meanwhile."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver = driver
        self.base = base

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def script(self, source: str, *args: Any) -> Any:
        return await self.run(self.driver.execute_script, source, *args)

    async def until(self, source: str, *args: Any, timeout: float = WAIT) -> Any:
        """Poll a JavaScript expression (bounded) until it is truthy; return its value."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.script(source, *args)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not true in {timeout} s: {source}")
            await asyncio.sleep(0.05)

    async def open(self, path: str = "/") -> None:
        await self.run(self.driver.get, self.base + path)
        await self.until("return document.readyState === 'complete'")

    async def log_in(self, email: str, password: str) -> None:
        await self.script(
            """const form = document.getElementById('login-form');
               form.elements.email.value = arguments[0];
               form.elements.password.value = arguments[1];
               form.querySelector('button[type=submit]').click();""",
            email,
            password,
        )

    async def text(self, selector: str) -> str:
        value: str = await self.script(
            "const n = document.querySelector(arguments[0]); return n ? n.textContent : '';",
            selector,
        )
        return value

    async def visible_text(self, element_id: str) -> str:
        return str(
            await self.until(
                "const n = document.getElementById(arguments[0]);"
                "return n && !n.closest('[hidden]') && n.textContent;",
                element_id,
            )
        )


@pytest.fixture
async def page(browser: Any, client: TestClient[Any, Any]) -> Page:
    return Page(browser, str(client.make_url("")).rstrip("/"))


@pytest.fixture
async def world(client: TestClient[Any, Any]) -> World:
    return await build_world(client)


def url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


async def open_device(page: Page, device_id: str) -> None:
    await page.until(
        "return [...document.querySelectorAll('#devices a')]"
        ".some(a => a.textContent === arguments[0])",
        device_id,
    )
    await page.script(
        "[...document.querySelectorAll('#devices a')].find(a => a.textContent === arguments[0])"
        ".click();",
        device_id,
    )
    await page.until("return !document.getElementById('device-view').hidden")
    await page.until("return document.getElementById('status').textContent === 'live'")


async def notification_texts(page: Page) -> list[str]:
    texts: list[str] = await page.script(
        "return [...document.querySelectorAll('#notifications li')].map(li => li.textContent)"
    )
    return texts


async def test_log_in_watch_a_device_and_command_it(page: Page, world: World) -> None:
    async with GatewayClient(url(world.client), token=world.admin) as device:
        earlier = await device.insert_notification("d1", "boot", {"version": 3})
        await page.open("/")
        assert await page.run(lambda: page.driver.current_url) == page.base + "/console/"

        await page.log_in(ALICE_EMAIL, "wrong password")
        assert await page.visible_text("login-message") == "Invalid email or password"

        await page.log_in(ALICE_EMAIL, PASSWORD)
        await page.until("return !document.getElementById('devices-view').hidden")
        rows = await page.until(
            "const rows = [...document.querySelectorAll('#devices tbody tr')];"
            "return rows.length && rows.map(r => [...r.cells].map(c => c.textContent));"
        )
        assert rows == [["d1", "d1", f"north ({world.n1})"], ["d3", "d3", f"north ({world.n1})"]]

        await open_device(page, "d1")
        # The last minutes are replayed on open.
        await page.until("return document.querySelector('#notifications li')")
        assert await page.text("#notifications li") == (
            f'boot{earlier["timestamp"]}{{"version":3}}'
        )

        live = await device.insert_notification("d1", "temperature", {"celsius": 21.5})
        await page.until("return document.querySelectorAll('#notifications li').length === 2")
        newest = await page.text("#notifications li")
        assert newest.startswith("temperature" + live["timestamp"]), "newest first"

        commands = await device.commands(device_id="d1").start()
        await page.script(
            """const form = document.getElementById('command-form');
               form.elements.command.value = 'set';
               form.elements.parameters.value = '{"celsius": 20}';
               form.querySelector('button[type=submit]').click();"""
        )
        async with asyncio.timeout(WAIT):
            sent = await anext(commands)
        assert (sent["command"], sent["parameters"], sent["userId"]) == (
            "set",
            {"celsius": 20},
            world.alice_id,
        )
        selector = f'#commands li[data-command-id="{sent["id"]}"] [data-field=status]'
        assert await page.until(
            "return document.querySelector(arguments[0])?.textContent", selector
        ) == ("pending")
        await device.update_command("d1", sent["id"], status="done", result={"ok": True})
        await page.until(
            "return document.querySelector(arguments[0])?.textContent === 'done'", selector
        )
        result = f'#commands li[data-command-id="{sent["id"]}"] [data-field=result]'
        assert await page.text(result) == 'result: {"ok":true}'


async def test_a_bad_command_shows_the_reason_and_sends_nothing(page: Page, world: World) -> None:
    await page.open("/console/")
    await page.log_in(ALICE_EMAIL, PASSWORD)
    await open_device(page, "d1")
    await page.script(
        """const form = document.getElementById('command-form');
           form.elements.command.value = 'set';
           form.elements.parameters.value = '{not json';
           form.querySelector('button[type=submit]').click();"""
    )
    message = await page.visible_text("command-message")
    assert message.startswith("Parameters: not JSON")
    assert await page.script("return document.querySelectorAll('#commands li').length") == 0


async def test_markup_in_a_payload_is_shown_as_text_never_run(page: Page, world: World) -> None:
    hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    await page.open("/console/")
    await page.log_in(ALICE_EMAIL, PASSWORD)
    await open_device(page, "d1")
    async with GatewayClient(url(world.client), token=world.admin) as device:
        await device.insert_notification("d1", "<b>bold</b>", {"html": hostile, hostile: 1})
    await page.until("return document.querySelector('#notifications li')")
    [text] = await notification_texts(page)
    assert text.startswith("<b>bold</b>")
    assert "window.__pwned=2</script>" in text
    assert (
        await page.script("return document.querySelectorAll('#notifications img, b').length") == 0
    )
    await asyncio.sleep(0.3)  # would an onerror handler have run, it would have by now
    assert await page.script("return window.__pwned === undefined") is True


async def test_a_revoked_session_returns_to_the_login_form(page: Page, world: World) -> None:
    await page.open("/console/")
    await page.log_in(ALICE_EMAIL, PASSWORD)
    await open_device(page, "d1")
    await rest(
        world.client, "POST", "/v1/auth/revoke", world.admin, 200, {"user_id": world.alice_id}
    )
    message = await page.visible_text("login-message")
    assert "revoked" in message
    assert await page.script("return document.getElementById('device-view').hidden") is True


async def test_logging_out_ends_the_session_quietly(
    page: Page, world: World, clean_db: str
) -> None:
    async def revocations() -> int:
        conn = await asyncpg.connect(clean_db)
        try:
            count: int = await conn.fetchval("SELECT count(*) FROM revocations")
        finally:
            await conn.close()
        return count

    await page.open("/console/")
    await page.log_in(ALICE_EMAIL, PASSWORD)
    await open_device(page, "d1")
    before = await revocations()
    await page.script("document.getElementById('logout').click();")
    await page.until("return !document.getElementById('login-view').hidden")
    assert await page.text("#login-message") == ""
    assert await page.text("#status") == ""
    async with asyncio.timeout(WAIT):
        while await revocations() == before:  # the logout reached the server
            await asyncio.sleep(0.05)
    body = await rest(world.client, "GET", "/v1/sessions", world.admin, 200)
    assert [s for s in body["sessions"] if s["user_id"] == world.alice_id] == []


async def test_a_lost_connection_resumes_without_gap_or_repeat(page: Page, world: World) -> None:
    await page.open("/console/")
    await page.log_in(ALICE_EMAIL, PASSWORD)
    await open_device(page, "d1")
    async with GatewayClient(url(world.client), token=world.admin) as device:
        first = await device.insert_notification("d1", "n", {"i": 0})
        await page.until("return document.querySelectorAll('#notifications li').length === 1")
        body = await rest(world.client, "GET", "/v1/sessions", world.admin, 200)
        [session] = [s for s in body["sessions"] if s["user_id"] == world.alice_id]
        await rest(world.client, "DELETE", f"/v1/sessions/{session['id']}", world.admin, 204)
        ids = [first["id"]]
        for i in range(1, 6):  # inserted while the console reconnects
            ids.append((await device.insert_notification("d1", "n", {"i": i}))["id"])
    await page.until("return document.querySelectorAll('#notifications li').length >= 6")
    await page.until("return document.getElementById('status').textContent === 'live'")
    await asyncio.sleep(0.3)
    shown = await page.script(
        "return [...document.querySelectorAll('#notifications li')].map(li => +li.dataset.id)"
    )
    assert shown == list(reversed(ids))


async def test_the_session_outlives_its_access_token(browser: Any, make_client: AppFactory) -> None:
    """A 2 s access token and a 0.5 s grace: the console renews over the socket and keeps its
    connection (a renewal missed would close it with 4002 and show a reconnect)."""
    client = await make_client(access_ttl=2.0, ws_expiry_grace=0.5, jwt_leeway=0.0)
    await build_world(client)
    page = Page(browser, url(client))
    await page.open("/console/")
    await page.log_in(ALICE_EMAIL, PASSWORD)
    await open_device(page, "d1")
    await page.script(
        "window.__statuses = [];"
        "new MutationObserver(() => window.__statuses.push("
        "document.getElementById('status').textContent))"
        ".observe(document.getElementById('status'), {childList: true, characterData: true,"
        " subtree: true});"
    )
    await asyncio.sleep(5.0)  # two and a half token lifetimes: the point of the test
    async with GatewayClient(url(client), email=ADMIN_EMAIL, password=ADMIN_PASSWORD) as device:
        await device.insert_notification("d1", "after-expiry")
    await page.until("return document.querySelector('#notifications li')")
    assert await page.script("return window.__statuses") == []


async def test_usable_on_a_phone_width_screen(page: Page, world: World) -> None:
    size = await page.run(page.driver.get_window_size)
    await page.run(page.driver.set_window_size, 375, 812)
    try:
        await page.open("/console/")
        await page.log_in(ALICE_EMAIL, PASSWORD)
        await open_device(page, "d1")
        overflow = await page.script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        width = await page.script(
            "return document.querySelector('#command-form button').getBoundingClientRect().width"
        )
        assert 0 < width <= 375
    finally:
        await page.run(page.driver.set_window_size, size["width"], size["height"])


async def test_the_console_files_are_served_with_a_strict_policy(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/console/")
    page = await client.get("/console/")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    script = await client.get("/console/app.js")
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    for path in ("/console/nope.js", "/console/..%2fapp.py", "/console/%2e%2e/__init__.py"):
        missing = await client.get(path)
        assert missing.status == 404, path
        assert (await missing.json())["message"] == "Not found"
