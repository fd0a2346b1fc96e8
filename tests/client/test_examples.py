"""The SDK examples run as shown: the README's, and examples/ws_client.py, against a real
gateway."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login
from tests.realtime.helpers import create_network, put_device

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- sdk-example:[^>]*-->\n```python\n(.*?)```", readme, re.S)
    assert found, "the README's SDK example is marked <!-- sdk-example: ... -->"
    return found.group(1)


async def test_the_readme_sdk_example_runs(
    client: TestClient[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    token = (await login(client, ADMIN_EMAIL, ADMIN_PASSWORD))["access_token"]
    await put_device(client, token, "thermo-1", await create_network(client, token, "home"))
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    await namespace["main"](str(client.make_url("")).rstrip("/"), ADMIN_EMAIL, ADMIN_PASSWORD)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\{'id': \d+, 'timestamp': '[0-9T:.-]+Z'\}", lines[0])
    assert lines[1] == "temperature {'celsius': 21.5}"
    assert re.fullmatch(r"\d+ set None None", lines[2])
    assert re.fullmatch(r"\d+ set done \{'ok': True\}", lines[3])
    assert len(lines) == 4


async def test_the_ws_client_example_runs(client: TestClient[Any, Any]) -> None:
    spec = importlib.util.spec_from_file_location("ws_client", ROOT / "examples" / "ws_client.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = await module.main(str(client.make_url("")).rstrip("/"), ADMIN_EMAIL, ADMIN_PASSWORD)
    assert lines == [
        "dashboard <- notification temperature {'celsius': 21.5}",
        "device    <- command set {'celsius': 20}",
        "dashboard <- command set status=None",
        "dashboard <- command set status=done",
    ]
