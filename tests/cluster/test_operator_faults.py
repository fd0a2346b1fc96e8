"""What an operator meets when things go wrong around the gateway, not in it: a PostgreSQL that
is unreachable or refuses at start-up, and similar faults at moments the outage tests do not
cover. Real processes only; every server a test stops is its own."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT
from tests.support.servers import free_port, with_database

pytestmark = pytest.mark.timeout(60)

SECRET = "operator-fault-secret-0123456789-abcdefghij"


async def run_gateway(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m gateway ARGS`` with a clean GATEWAY_* environment: (exit code, out, err)."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args,
        cwd=REPO_ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**base, "GATEWAY_JWT_SECRET": SECRET, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 45)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("command", ["serve", "migrate"])
async def test_an_unreachable_postgres_at_start_up_is_one_line(
    command: str, tmp_path: Path
) -> None:
    """The pool opens no connection until it is used: the start-up check must use it, or the
    operator reads ``gateway: Connection refused`` (refused by what?)."""
    port = free_port()
    url = f"postgresql://gw:hunter2@127.0.0.1:{port}/gw"
    code, out, err = await run_gateway(
        command, "--database-url", url, "--port", str(free_port()),
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        f"gateway: configuration error: cannot connect to PostgreSQL at "
        f"postgresql://gw:***@127.0.0.1:{port}/gw: "
    ), lines
    assert "refused" in lines[0] or "failed" in lines[0], lines
    assert "hunter2" not in err + out


@pytest.mark.parametrize("command", ["serve", "migrate"])
async def test_a_postgres_that_refuses_the_database_at_start_up_is_one_line(
    command: str, database_url: str, tmp_path: Path
) -> None:
    """A server that answers but refuses (no such database) was a traceback."""
    url = with_database(database_url, "gateway_no_such_database")
    code, _, err = await run_gateway(
        command, "--database-url", url, "--port", str(free_port()),
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2, err
    assert err.splitlines() == [
        f"gateway: configuration error: cannot connect to PostgreSQL at {url}: "
        'database "gateway_no_such_database" does not exist'
    ], err
