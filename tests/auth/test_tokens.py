"""Token verification against forgeries, the JWKS, and key rotation.

Every forged token is presented to a real gateway over HTTP; each must be a 401 whose message
does not help the forger beyond "Invalid token" (or "Token expired").
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any, TypedDict

import jwt
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.app import WIRING_KEY
from gateway.auth.revocation import RevocationView
from gateway.auth.tokens import KeySet, TokenCodec
from gateway.config import ConfigError, Settings
from gateway.errors import Unauthorized
from gateway.types import Action, Revocation, Scope
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET, AppFactory, bearer, login
from tests.support.http import expect_error, expect_json, me_status, token_info
from tests.support.tokens import (
    hs256,
    new_key,
    public_pem,
    resign,
    split,
    tamper,
    thumbprint,
    unsigned,
    write_keys,
)

INVALID = "Invalid token"


async def me(client: TestClient[Any, Any], token: str) -> Any:
    return await client.get("/v1/auth/me", headers=bearer(token))


# -- forgeries against the default HS256 gateway ---------------------------------------------


async def test_alg_none_is_refused(client: TestClient[Any, Any], admin: dict[str, Any]) -> None:
    header, payload = split(admin["access_token"])
    await expect_error(await me(client, unsigned(header, payload)), 401, INVALID)
    await expect_error(await me(client, unsigned({"typ": "JWT"}, payload)), 401, INVALID)
    # "none" spelled differently is not a way around the pinned algorithm either.
    for alg in ("None", "NONE", "nOnE"):
        await expect_error(await me(client, unsigned(header, payload, alg)), 401, INVALID)


async def test_a_token_signed_with_another_secret_is_refused(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    forged = resign(admin["access_token"], secret="another-secret-" + "x" * 32)
    await expect_error(await me(client, forged), 401, INVALID)


async def test_a_tampered_payload_is_refused(
    client: TestClient[Any, Any], admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/users",
        json={"name": "c", "email": "c@example.com", "password": "password-1", "role": "client"},
        headers=admin_headers,
    )
    await expect_json(response, 201)
    pair = await login(client, "c@example.com", "password-1")
    promoted = tamper(pair["access_token"], role="admin", actions=list(range(2, 19)))
    await expect_error(await me(client, promoted), 401, INVALID)
    longer = tamper(pair["access_token"], exp=split(pair["access_token"])[1]["exp"] + 86400)
    await expect_error(await me(client, longer), 401, INVALID)
    # The untouched token still works: the refusal is about the change.
    assert await me_status(client, pair["access_token"]) == 200


async def test_an_unknown_or_missing_kid_is_refused(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    header, payload = split(admin["access_token"])
    unknown = hs256({**header, "kid": "hs-0000000000000000"}, payload, JWT_SECRET.encode())
    await expect_error(await me(client, unknown), 401, INVALID)
    missing = hs256({"typ": "JWT"}, payload, JWT_SECRET.encode())
    await expect_error(await me(client, missing), 401, INVALID)
    not_a_string = hs256({**header, "kid": 7}, payload, JWT_SECRET.encode())
    await expect_error(await me(client, not_a_string), 401, INVALID)


async def test_an_expired_token_is_refused(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    now = int(time.time())
    expired = resign(admin["access_token"], iat=now - 3600, exp=now - 60)
    await expect_error(await me(client, expired), 401, "Token expired")
    # Within the configured leeway (10 s by default) a just-expired token still passes.
    grace = resign(admin["access_token"], exp=now - 2)
    assert await me_status(client, grace) == 200


async def test_an_access_token_really_expires(make_client: AppFactory) -> None:
    client = await make_client(access_ttl=1.0, jwt_leeway=0.0)
    pair = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert pair["expires_in"] == 1
    assert await me_status(client, pair["access_token"]) == 200
    await asyncio.sleep(1.2)
    await expect_error(await me(client, pair["access_token"]), 401, "Token expired")
    # The refresh token outlives it and gets a fresh one.
    response = await client.post(
        "/v1/auth/token/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    renewed = await expect_json(response, 200)
    assert await me_status(client, renewed["access_token"]) == 200


async def test_a_token_issued_in_the_future_is_refused(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    now = int(time.time())
    future = resign(admin["access_token"], iat=now + 3600, exp=now + 7200)
    await expect_error(await me(client, future), 401, INVALID)


async def test_a_refresh_token_is_not_a_bearer_token(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    await expect_error(
        await me(client, admin["refresh_token"]), 401, "Invalid token: expected an access token"
    )
    response = await client.get("/v1/auth/tokenInfo", headers=bearer(admin["refresh_token"]))
    await expect_error(response, 401, "Invalid token: expected an access token")
    # Relabelling a refresh token as an access token breaks its signature.
    relabelled = tamper(admin["refresh_token"], typ="access")
    await expect_error(await me(client, relabelled), 401, INVALID)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iss": "someone-else"}, INVALID),
        ({"drop": ("sid",)}, INVALID),
        ({"drop": ("exp",)}, INVALID),
        ({"drop": ("typ",)}, INVALID),
        ({"drop": ("jti",)}, INVALID),
        ({"typ": "session"}, "Invalid token: expected an access token"),
        ({"role": "root"}, "Invalid token: malformed claims"),
        ({"sub": "abc"}, "Invalid token: malformed claims"),
        ({"actions": [99]}, "Invalid token: malformed claims"),
        ({"actions": 3}, "Invalid token: malformed claims"),
        ({"sid": 5}, "Invalid token: malformed claims"),
        ({"networkIds": "*"}, "Invalid token: networkIds must be a list"),
        ({"networkIds": [True]}, "Invalid token: malformed networkIds"),
        ({"deviceIds": [1]}, "Invalid token: malformed deviceIds"),
        ({"fam": "sid-1"}, "Invalid token: malformed claims"),
        ({"fam": [1]}, "Invalid token: malformed claims"),
        ({"fam": [None]}, "Invalid token: malformed claims"),
        ({"fam": [f"sid-{i}" for i in range(9)]}, "Invalid token: malformed claims"),
    ],
)
async def test_validly_signed_tokens_with_bad_claims_are_refused(
    client: TestClient[Any, Any],
    admin: dict[str, Any],
    changes: dict[str, Any],
    message: str,
) -> None:
    """Even a token signed with the real key is only honoured with well-formed claims."""
    forged = resign(admin["access_token"], **changes)
    await expect_error(await me(client, forged), 401, message)


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "\u00e9.x.y"]
)
async def test_garbage_tokens_are_refused(client: TestClient[Any, Any], token: str) -> None:
    response = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    message = (
        "Malformed Authorization header (expected: Bearer <access token>)" if not token else INVALID
    )
    await expect_error(response, 401, message)


async def test_token_info_shows_the_verified_header_and_payload(
    client: TestClient[Any, Any], admin: dict[str, Any]
) -> None:
    info = await token_info(client, admin["access_token"])
    header, payload = split(admin["access_token"])
    assert info == {"header": header, "payload": payload}
    assert header == {"alg": "HS256", "typ": "JWT", "kid": header["kid"]}
    kid = client.app[WIRING_KEY].keys.current.kid
    assert header["kid"] == kid


async def test_the_jwks_of_an_hs256_gateway_is_empty(client: TestClient[Any, Any]) -> None:
    assert await expect_json(await client.get("/.well-known/jwks.json"), 200) == {"keys": []}


# -- asymmetric keys --------------------------------------------------------------------------


class JwkShape(TypedDict):
    kty: str
    members: set[str]


JWK_MEMBERS: dict[str, JwkShape] = {
    "RS256": {"kty": "RSA", "members": {"n", "e"}},
    "ES256": {"kty": "EC", "members": {"crv", "x", "y"}},
    "EdDSA": {"kty": "OKP", "members": {"crv", "x"}},
}


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
async def test_asymmetric_tokens_verify_with_the_published_jwk(
    make_client: AppFactory, tmp_path: Path, algorithm: str
) -> None:
    key = new_key(algorithm)
    private, _ = write_keys(tmp_path, "current", key)
    client = await make_client(jwt_algorithm=algorithm, jwt_private_key_file=private)
    pair = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert await me_status(client, pair["access_token"]) == 200

    jwks = await expect_json(await client.get("/.well-known/jwks.json"), 200)
    assert len(jwks["keys"]) == 1
    jwk = jwks["keys"][0]
    expected = JWK_MEMBERS[algorithm]
    assert set(jwk) == {"kty", "kid", "alg", "use"} | expected["members"]
    assert jwk["kty"] == expected["kty"]
    assert jwk["alg"] == algorithm
    assert jwk["use"] == "sig"
    assert jwk["kid"] == thumbprint(jwk)
    if algorithm == "ES256":
        assert jwk["crv"] == "P-256"
    if algorithm == "EdDSA":
        assert jwk["crv"] == "Ed25519"

    header, _ = split(pair["access_token"])
    assert header == {"alg": algorithm, "typ": "JWT", "kid": jwk["kid"]}
    # A third party verifies the token with nothing but the JWKS, and gets the same key.
    published = jwt.PyJWK(jwk).key
    assert public_pem(key) == public_pem_of(published)
    claims = jwt.decode(pair["access_token"], published, algorithms=[algorithm], issuer="gateway")
    assert claims["typ"] == "access"


def public_pem_of(public_key: Any) -> bytes:
    pem: bytes = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


async def rs256_gateway(
    make_client: AppFactory, tmp_path: Path
) -> tuple[Any, Path, dict[str, Any], dict[str, Any]]:
    """An RS256 gateway, its public key file, and the split admin access token it issued."""
    private, public = write_keys(tmp_path, "rsa", new_key("RS256"))
    client = await make_client(jwt_algorithm="RS256", jwt_private_key_file=private)
    pair = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    header, payload = split(pair["access_token"])
    return client, public, header, payload


async def test_hs256_signed_with_the_rs256_public_key_is_refused(
    make_client: AppFactory, tmp_path: Path
) -> None:
    """The classic algorithm confusion: HMAC keyed with the public PEM the server publishes."""
    client, public, header, payload = await rs256_gateway(make_client, tmp_path)
    pem = public.read_bytes()
    for kid_header in ({**header}, {"typ": "JWT"}):
        forged = hs256(kid_header, payload, pem)
        await expect_error(await me(client, forged), 401, INVALID)
        stripped = hs256(kid_header, payload, pem.strip())
        await expect_error(await me(client, stripped), 401, INVALID)
    # Nor does the HS256 secret the test settings also carry open a way in.
    hs_kid = "hs-" + hashlib.sha256(b"gateway-kid:" + JWT_SECRET.encode()).hexdigest()[:16]
    forged = hs256({"typ": "JWT", "kid": hs_kid}, payload, JWT_SECRET.encode())
    await expect_error(await me(client, forged), 401, INVALID)
    forged = unsigned(header, payload)
    await expect_error(await me(client, forged), 401, INVALID)


async def test_a_token_signed_by_an_unconfigured_key_is_refused(
    make_client: AppFactory, tmp_path: Path
) -> None:
    client, _, header, payload = await rs256_gateway(make_client, tmp_path)
    stranger = new_key("RS256")
    # Same kid as the real key, signature by another key.
    forged = jwt.encode(payload, stranger, algorithm="RS256", headers={"kid": header["kid"]})
    await expect_error(await me(client, forged), 401, INVALID)


@pytest.mark.parametrize(
    ("old_algorithm", "new_algorithm"),
    [("ES256", "ES256"), ("RS256", "EdDSA")],
    ids=["same-algorithm", "algorithm-change"],
)
async def test_a_previous_public_key_is_still_accepted_during_rotation(
    make_client: AppFactory, tmp_path: Path, old_algorithm: str, new_algorithm: str
) -> None:
    old_key, new = new_key(old_algorithm), new_key(new_algorithm)
    old_private, old_public = write_keys(tmp_path, "old", old_key)
    new_private, _ = write_keys(tmp_path, "new", new)

    before = await make_client(jwt_algorithm=old_algorithm, jwt_private_key_file=old_private)
    old_pair = await login(before, ADMIN_EMAIL, ADMIN_PASSWORD)

    rotated = await make_client(
        jwt_algorithm=new_algorithm,
        jwt_private_key_file=new_private,
        jwt_previous_public_key_file=old_public,
    )
    assert await me_status(rotated, old_pair["access_token"]) == 200
    renewed = await expect_json(
        await rotated.post(
            "/v1/auth/token/refresh", json={"refresh_token": old_pair["refresh_token"]}
        ),
        200,
    )
    new_header, _ = split(renewed["access_token"])
    old_header, _ = split(old_pair["access_token"])
    assert new_header["kid"] != old_header["kid"]

    assert (old_header["alg"], new_header["alg"]) == (old_algorithm, new_algorithm)
    jwks = await expect_json(await rotated.get("/.well-known/jwks.json"), 200)
    assert {(jwk["kid"], jwk["alg"]) for jwk in jwks["keys"]} == {
        (old_header["kid"], old_algorithm),
        (new_header["kid"], new_algorithm),
    }

    # Once the previous key is dropped from the configuration, its tokens stop working.
    after = await make_client(jwt_algorithm=new_algorithm, jwt_private_key_file=new_private)
    fresh = await login(after, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert await me_status(after, fresh["access_token"]) == 200
    await expect_error(await me(after, old_pair["access_token"]), 401, INVALID)
    assert await me_status(after, renewed["access_token"]) == 200


async def test_a_previous_hs256_secret_is_still_accepted_during_rotation(
    make_client: AppFactory,
) -> None:
    before = await make_client()
    old_pair = await login(before, ADMIN_EMAIL, ADMIN_PASSWORD)
    new_secret = "rotated-secret-0123456789-abcdefghijk"
    rotated = await make_client(jwt_secret=new_secret, jwt_previous_secret=JWT_SECRET)
    assert await me_status(rotated, old_pair["access_token"]) == 200
    fresh = await login(rotated, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert split(fresh["access_token"])[0]["kid"] != split(old_pair["access_token"])[0]["kid"]
    assert await expect_json(await rotated.get("/.well-known/jwks.json"), 200) == {"keys": []}
    after = await make_client(jwt_secret=new_secret)
    await expect_error(await me(after, old_pair["access_token"]), 401, INVALID)
    assert await me_status(after, fresh["access_token"]) == 200


# -- the key set and codec directly -----------------------------------------------------------


def test_a_key_of_the_wrong_type_is_a_config_error(tmp_path: Path) -> None:
    private, _ = write_keys(tmp_path, "ec", new_key("ES256"))
    settings = Settings(jwt_algorithm="RS256", jwt_private_key_file=private)
    with pytest.raises(ConfigError, match="holds a key for ES256, not RS256"):
        KeySet.from_settings(settings)


def test_es256_needs_a_p256_key(tmp_path: Path) -> None:
    private, _ = write_keys(tmp_path, "p384", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ConfigError, match="ES256 needs a P-256 key"):
        KeySet.from_settings(Settings(jwt_algorithm="ES256", jwt_private_key_file=private))


def test_unreadable_or_non_pem_key_files_are_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match="GATEWAY_JWT_PRIVATE_KEY_FILE: cannot read"):
        KeySet.from_settings(Settings(jwt_algorithm="RS256", jwt_private_key_file=missing))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match="GATEWAY_JWT_PRIVATE_KEY_FILE: not a PEM private key"):
        KeySet.from_settings(Settings(jwt_algorithm="RS256", jwt_private_key_file=garbage))
    private, _ = write_keys(tmp_path, "rsa", new_key("RS256"))
    with pytest.raises(
        ConfigError, match="GATEWAY_JWT_PREVIOUS_PUBLIC_KEY_FILE: not a PEM public key"
    ):
        KeySet.from_settings(
            Settings(
                jwt_algorithm="RS256",
                jwt_private_key_file=private,
                jwt_previous_public_key_file=garbage,
            )
        )


def test_the_generated_hs256_secret_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    first = KeySet.from_settings(Settings(data_dir=tmp_path))
    second = KeySet.from_settings(Settings(data_dir=tmp_path))
    assert first.current.kid == second.current.kid
    secret_file = tmp_path / "jwt_secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert len(secret_file.read_text().strip()) >= 32


def test_the_codec_round_trips_and_pins_the_issuer() -> None:
    keys = KeySet.from_settings(Settings(jwt_secret=JWT_SECRET))
    codec = TokenCodec(keys, "gateway", leeway=0)
    issued = codec.issue(
        typ="access",
        user_id=7,
        role="client",
        sid="00000000-0000-4000-8000-000000000001",
        actions=frozenset({Action.GetDevice}),
        scope=Scope(network_ids=frozenset({3, 1}), device_ids=None),
        ttl=60,
    )
    principal = codec.principal(issued.token)
    assert principal.user_id == 7
    assert principal.actions == frozenset({Action.GetDevice})
    assert principal.scope.network_ids == frozenset({1, 3})
    assert principal.scope.device_ids is None
    assert split(issued.token)[1]["networkIds"] == [1, 3]
    other = TokenCodec(keys, "another-issuer", leeway=0)
    with pytest.raises(Unauthorized, match="Invalid token"):
        other.principal(issued.token)


def test_iat_is_never_later_than_the_moment_of_issue() -> None:
    """A token issued a fraction of a millisecond before a user's cut-off falls under it."""
    codec = TokenCodec(KeySet.from_settings(Settings(jwt_secret=JWT_SECRET)), "gateway", leeway=0)
    second = float(int(time.time()))
    issued = codec.issue(
        typ="access",
        user_id=7,
        role="client",
        sid="00000000-0000-4000-8000-000000000001",
        actions=frozenset({Action.GetDevice}),
        scope=Scope(),
        ttl=60,
        now=second + 0.0006,
    )
    assert issued.issued_at == second
    view = RevocationView()
    view.apply(
        Revocation(
            kind="user", subject="7", reason="t", revoked_at=second + 0.0008, expires_at=second + 60
        )
    )
    assert view.is_revoked(codec.principal(issued.token))
