"""REST fuzzing: schemathesis's CLI over /v1/openapi.json of a gateway process started here.

Every check schemathesis has runs (no server error, status codes, response schemas, headers,
negative data refused, positive data accepted, auth, stateful links...). The normal suite runs a
short pass; ``make fuzz`` sets FUZZ_REST_EXAMPLES and FUZZ_REST_PHASES for a long one (at least
1,000 cases). The figures go to stdout and to FUZZ_FIGURES when set.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
import uuid
from pathlib import Path

import aiohttp
import jwt
import pytest

from tests.support.processes import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    JWT_SECRET,
    REPO_ROOT,
    GatewayProcess,
    gateway_env,
)
from tests.support.servers import free_port

EXAMPLES = int(os.environ.get("FUZZ_REST_EXAMPLES", "3"))
"""Cases per operation in the generating phases."""

PHASES = os.environ.get("FUZZ_REST_PHASES", "examples,fuzzing")
MIN_CASES = int(os.environ.get("FUZZ_REST_MIN_CASES", "80"))
CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = os.environ.get("FUZZ_SEED") or (
    str(secrets.randbelow(2**63)) if os.environ.get("FUZZ_RANDOM") else "20261130"
)
"""Fixed for make test (the same cases every run), new for make fuzz (FUZZ_RANDOM)."""

pytestmark = pytest.mark.timeout(int(os.environ.get("FUZZ_TIMEOUT", "600")))


def record(line: str) -> None:
    print(line)
    figures = os.environ.get("FUZZ_FIGURES")
    if figures:
        with open(figures, "a") as out:
            out.write(line + "\n")


TOOL_BUG = "AST constructor recursion depth mismatch"
"""CPython 3.11's ``ast`` module can miscount its recursion depth (python/cpython#106905);
hypothesis meets it while describing one of schemathesis's strategies, and schemathesis reports
the operation as a runtime error of its own, untested. Not the gateway's: the run names such
operations and passes when nothing failed and no other error occurred."""


def _only_the_tool_bug(output: str) -> list[str]:
    """The operations a run lost to ``TOOL_BUG`` alone (empty if any other error occurred)."""
    errors = re.findall(r"^_+ (.+?) _+\nRuntime Error\n\n(.*)$", output, re.M)
    if not errors or any(TOOL_BUG not in message for _, message in errors):
        return []
    return [operation for operation, _ in errors]


def _failures(output: str) -> str:
    """Each failure's operation, check and reproduction, shortened."""
    wanted = re.compile(r"^(_+ .+ _+|- ST\d+ .*|\s+curl .*|\s+`\{.*|\[\d{3}\] .*)$")
    lines = [line[:400] for line in output.splitlines() if wanted.match(line)]
    return "\n".join(lines) or output[-4000:]


async def _admin(gateway: GatewayProcess) -> tuple[str, str]:
    """The admin's id and the signing key's kid, from a real login."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gateway.url + "/v1/auth/login",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        pair = await response.json()
    return str(pair["user_id"]), str(jwt.get_unverified_header(pair["access_token"])["kid"])


async def test_schemathesis_finds_no_failure(clean_db: str, tmp_path: Path) -> None:
    gateway = GatewayProcess(
        "rest-fuzz",
        gateway_env(
            database_url=clean_db,
            port=free_port(),
            instance_id=f"fuzz-{uuid.uuid4().hex[:6]}",
            data_dir=tmp_path / "data",
        ),
        tmp_path,
    )
    gateway.start()
    try:
        await gateway.wait_ready()
        admin_id, kid = await _admin(gateway)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "SCHEMATHESIS_HOOKS": "tests.fuzz.st_hooks",
            "FUZZ_ADMIN_ID": admin_id,
            "FUZZ_JWT_KID": kid,
            "FUZZ_JWT_SECRET": JWT_SECRET,
        }
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            gateway.url + "/v1/openapi.json",
            "--checks",
            "all",
            "--phases",
            PHASES,
            "--max-examples",
            str(EXAMPLES),
            "--workers",
            "2",
            "--seed",
            SEED,
            "--generation-database",
            "none",
            "--output-truncate",
            "true",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        raw, _ = await process.communicate()
        output = raw.decode(errors="replace")
        generated = re.search(r"(\d+) generated", output)
        failures = re.search(r"(\d+) found (\d+) unique failures?", output)
        cases = int(generated.group(1)) if generated else 0
        record(
            f"schemathesis: {cases} cases (seed {SEED}), phases {PHASES}, "
            f"{EXAMPLES} examples per operation, "
            f"{failures.group(2) if failures else 0} failures, exit code {process.returncode}"
        )
        (tmp_path / "schemathesis.txt").write_text(output)
        lost = [] if failures else _only_the_tool_bug(output)
        if lost:
            record(f"schemathesis: not tested, {TOOL_BUG!r} (a CPython bug): {', '.join(lost)}")
        assert process.returncode == 0 or lost, _failures(output)
        assert cases >= MIN_CASES, output[-3000:]
        assert "Traceback" not in gateway.logs(lines=100_000)
    finally:
        gateway.stop()
