"""Native TLS: HTTPS and WSS with a certificate the test makes, TLS 1.2 at least, a SIGHUP
reload that new handshakes see while a live socket stays open, and one clear line for a bad file."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from tests.support.processes import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    REPO_ROOT,
    GatewayProcess,
    gateway_env,
)
from tests.support.servers import free_port

WAIT = 10.0


def write_pair(ca: trustme.CA, directory: Path) -> tuple[Path, Path, bytes]:
    """A certificate for 127.0.0.1 from ``ca``: (chain file, key file, the leaf's DER)."""
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key_file.write_bytes(issued.private_key_pem.bytes())
    return cert_file, key_file, ssl.PEM_cert_to_DER_cert(issued.cert_chain_pems[0].bytes().decode())


def trusting(*cas: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for ca in cas:
        ca.configure_trust(context)
    return context


async def served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The DER of the certificate a fresh handshake is given."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return der
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def tls_gateway(
    clean_db: str, tmp_path: Path
) -> AsyncIterator[tuple[GatewayProcess, trustme.CA, Path]]:
    ca = trustme.CA()
    cert_file, key_file, _ = write_pair(ca, tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = gateway_env(
        database_url=clean_db,
        port=free_port(),
        instance_id=f"tls-{uuid.uuid4().hex[:6]}",
        data_dir=data_dir,
        extra={"GATEWAY_TLS_CERT_FILE": str(cert_file), "GATEWAY_TLS_KEY_FILE": str(key_file)},
    )
    gateway = GatewayProcess("tls", env, tmp_path, ssl_context=trusting(ca))
    gateway.start()
    try:
        await gateway.wait_ready()
        yield gateway, ca, tmp_path
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_https_and_wss_then_a_sighup_reload_keeps_live_sockets(
    tls_gateway: tuple[GatewayProcess, trustme.CA, Path],
) -> None:
    gateway, first_ca, directory = tls_gateway
    second_ca = trustme.CA()
    connector = aiohttp.TCPConnector(ssl=trusting(first_ca, second_ca))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(
            gateway.url + "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ) as response:
            assert response.status == 200
            token = (await response.json())["access_token"]
        ws = await http.ws_connect(gateway.ws_url, headers={"Authorization": f"Bearer {token}"})
        await ws.send_json({"action": "server/info", "requestId": 1})
        info = (await ws.receive_json(timeout=WAIT))["info"]
        assert info["webSocketServerUrl"] == f"wss://127.0.0.1:{gateway.port}/v1/ws"
        assert info["restServerUrl"] == f"https://127.0.0.1:{gateway.port}/v1"

        _, _, new_der = write_pair(second_ca, directory)
        assert gateway.process is not None
        os.kill(gateway.process.pid, signal.SIGHUP)
        for _ in range(int(WAIT / 0.05)):
            if await served_certificate(gateway.port, trusting(first_ca, second_ca)) == new_der:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the new certificate was never served\n{gateway.logs()}")
        assert "TLS certificate reloaded" in gateway.stderr()

        # The socket opened under the old certificate is still there and still answers.
        await ws.send_json({"action": "server/info", "requestId": 2})
        assert (await ws.receive_json(timeout=WAIT))["requestId"] == 2
        assert not ws.closed
        await ws.close()

    # A client that trusts only the new CA now gets in.
    connector = aiohttp.TCPConnector(ssl=trusting(second_ca))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(gateway.url + "/healthz") as response:
            assert response.status == 200
        ws = await http.ws_connect(gateway.ws_url)
        await ws.close()


async def test_a_bad_pair_on_sighup_keeps_the_current_certificate(
    tls_gateway: tuple[GatewayProcess, trustme.CA, Path],
) -> None:
    gateway, ca, directory = tls_gateway
    before = await served_certificate(gateway.port, trusting(ca))
    (directory / "key.pem").write_text("not a key\n")
    assert gateway.process is not None
    os.kill(gateway.process.pid, signal.SIGHUP)
    for _ in range(int(WAIT / 0.05)):
        if "TLS certificate not reloaded" in gateway.stderr():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(gateway.logs())
    assert await served_certificate(gateway.port, trusting(ca)) == before


async def test_plain_http_and_tls_1_1_are_refused(
    tls_gateway: tuple[GatewayProcess, trustme.CA, Path],
) -> None:
    gateway, ca, _ = tls_gateway
    old = trusting(ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await served_certificate(gateway.port, old)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{gateway.port}/healthz") as response:
                await response.read()


def serve_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve"],
        env={**base, "GATEWAY_PORT": str(free_port()), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("broken", ["missing", "garbage", "mismatched", "cert only"])
def test_a_bad_or_unreadable_file_stops_start_up_with_one_line(tmp_path: Path, broken: str) -> None:
    cert_file, key_file, _ = write_pair(trustme.CA(), tmp_path)
    expected = "GATEWAY_TLS_CERT_FILE/GATEWAY_TLS_KEY_FILE: not a PEM certificate chain"
    if broken == "missing":
        cert_file = tmp_path / "nowhere.pem"
        expected = f"GATEWAY_TLS_CERT_FILE: cannot read {cert_file}: No such file or directory"
    elif broken == "garbage":
        cert_file.write_text("-----BEGIN CERTIFICATE-----\nnonsense\n")
    elif broken == "mismatched":
        other = tmp_path / "other"
        other.mkdir()
        _, key_file, _ = write_pair(trustme.CA(), other)
    env = {"GATEWAY_TLS_CERT_FILE": str(cert_file), "GATEWAY_DATA_DIR": str(tmp_path / "d")}
    if broken == "cert only":
        expected = "GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE must be set together"
    else:
        env["GATEWAY_TLS_KEY_FILE"] = str(key_file)
    result = serve_with(env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"gateway: configuration error: {expected}")
    assert not (tmp_path / "d").exists()  # stopped before anything was started
