"""Hand-made JWTs for forgery tests, and key files for the asymmetric algorithms.

Tokens are built byte by byte here (not with PyJWT) so that a test can make exactly the token an
attacker would, including ones PyJWT refuses to produce (``alg: none``, HMAC keyed with a PEM).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import JWT_SECRET

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def split(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, payload) of a token, unverified."""
    header, payload, _ = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload))


def hs256(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """An HS256 token keyed with any bytes (a PEM public key included)."""
    header = {**header, "alg": "HS256"}
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned(header: dict[str, Any], payload: dict[str, Any], alg: str = "none") -> str:
    """An ``alg: none`` token (or another spelling of none) with an empty signature."""
    return f"{_segment({**header, 'alg': alg})}.{_segment(payload)}."


def resign(
    token: str,
    *,
    secret: str = JWT_SECRET,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """The same token with claims changed (or dropped), validly signed with the test secret."""
    old_header, payload = split(token)
    payload = {k: v for k, v in {**payload, **claims}.items() if k not in drop}
    return hs256({**old_header, **(header or {})}, payload, secret.encode())


def tamper(token: str, **claims: Any) -> str:
    """The same token with claims changed but the original signature kept."""
    header, payload, signature = token.split(".")
    changed = {**json.loads(unb64url(payload)), **claims}
    return f"{header}.{_segment(changed)}.{signature}"


def new_key(algorithm: str) -> PrivateKey:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(algorithm)


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_keys(directory: Path, name: str, key: PrivateKey) -> tuple[Path, Path]:
    """The key as ``name.pem`` (PKCS#8 private) and ``name.pub.pem``; returns both paths."""
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(public_pem(key))
    return private, public


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint, computed independently of the gateway."""
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    canonical = {name: jwk[name] for name in members[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(canonical, separators=(",", ":"), sort_keys=True).encode())
    return b64url(digest.digest())
