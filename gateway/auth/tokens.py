"""Issue and verify JWTs; hold the signing keys and publish the public ones as a JWKS.

Each key carries its own algorithm and ``kid``; verification looks the key up by ``kid`` and passes
exactly that key's algorithm to PyJWT, so ``none`` and HS/RS confusion are impossible by
construction rather than by a deny-list.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.config import ConfigError, Settings
from gateway.errors import TokenExpired, Unauthorized
from gateway.types import WILDCARD, Action, Principal, Scope, Topic

ACCESS = "access"
REFRESH = "refresh"

_REQUIRED_CLAIMS = ["iss", "sub", "jti", "iat", "exp", "typ", "sid"]
_MAX_PARENTS = 8


@dataclass(frozen=True, slots=True)
class Key:
    kid: str
    algorithm: str
    signing: Any | None
    verifying: Any

    def public_jwk(self) -> dict[str, Any] | None:
        if self.algorithm == "HS256":
            return None
        jwk = _public_jwk(self.verifying)
        # PyJWT adds key_ops for RSA only; RFC 7517 4.3: use and key_ops should not be combined.
        jwk.pop("key_ops", None)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(public_key: Any) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(_algorithm_for(public_key))
    jwk: dict[str, Any] = algorithm.to_jwk(public_key, as_dict=True)
    return jwk


def _thumbprint(public_key: Any) -> str:
    """RFC 7638 thumbprint: a kid that any party can recompute from the public key."""
    jwk = _public_jwk(public_key)
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    canonical = {name: jwk[name] for name in members[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(canonical, separators=(",", ":"), sort_keys=True).encode())
    return _b64(digest.digest())


def _algorithm_for(public_key: Any) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ConfigError("ES256 needs a P-256 key")
        return "ES256"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ConfigError(f"unsupported public key type: {type(public_key).__name__}")


def _hmac_key(secret: str) -> Key:
    raw = secret.encode()
    kid = "hs-" + hashlib.sha256(b"gateway-kid:" + raw).hexdigest()[:16]
    return Key(kid=kid, algorithm="HS256", signing=raw, verifying=raw)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None


def _asymmetric_key(path: Path, algorithm: str) -> Key:
    try:
        private = serialization.load_pem_private_key(
            _read(path, "GATEWAY_JWT_PRIVATE_KEY_FILE"), None
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"GATEWAY_JWT_PRIVATE_KEY_FILE: not a PEM private key: {exc}") from None
    public = private.public_key()
    if _algorithm_for(public) != algorithm:
        raise ConfigError(
            f"GATEWAY_JWT_PRIVATE_KEY_FILE holds a key for {_algorithm_for(public)},"
            f" not {algorithm}"
        )
    return Key(kid=_thumbprint(public), algorithm=algorithm, signing=private, verifying=public)


def _previous_public_key(path: Path) -> Key:
    try:
        public = serialization.load_pem_public_key(
            _read(path, "GATEWAY_JWT_PREVIOUS_PUBLIC_KEY_FILE")
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"GATEWAY_JWT_PREVIOUS_PUBLIC_KEY_FILE: not a PEM public key: {exc}"
        ) from None
    return Key(
        kid=_thumbprint(public), algorithm=_algorithm_for(public), signing=None, verifying=public
    )


def generated_secret(data_dir: Path) -> str:
    """The HS256 secret kept in the data dir, made on first start (mode 0600)."""
    path = data_dir / "jwt_secret"
    try:
        if path.exists():
            return path.read_text().strip()
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        return secret
    except OSError as exc:
        raise ConfigError(
            f"GATEWAY_DATA_DIR: cannot keep the signing secret in {path}: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class KeySet:
    current: Key
    by_kid: dict[str, Key]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeySet:
        previous: Key | None = None
        if settings.jwt_algorithm == "HS256":
            current = _hmac_key(settings.jwt_secret or generated_secret(settings.data_dir))
            if settings.jwt_previous_secret:
                previous = _hmac_key(settings.jwt_previous_secret)
        else:
            assert settings.jwt_private_key_file is not None
            current = _asymmetric_key(settings.jwt_private_key_file, settings.jwt_algorithm)
        if settings.jwt_previous_public_key_file is not None:
            previous = _previous_public_key(settings.jwt_previous_public_key_file)
        keys = {current.kid: current}
        if previous is not None:
            keys[previous.kid] = previous
        return cls(current=current, by_kid=keys)

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        found = (key.public_jwk() for key in self.by_kid.values())
        return {"keys": [jwk for jwk in found if jwk is not None]}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    issued_at: float
    expires_at: int


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: IssuedToken
    refresh: IssuedToken
    user_id: int
    answered_at: float
    """When the pair was signed (``issued_at`` is earlier: when the rights were read)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access.token,
            "refresh_token": self.refresh.token,
            "token_type": "Bearer",
            "expires_in": self.access.expires_at - int(self.answered_at),
            "issued_at": _iso(self.access.issued_at),
            "expires_at": _iso(self.access.expires_at),
            "user_id": self.user_id,
        }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class TokenCodec:
    """Signs and verifies the gateway's tokens."""

    def __init__(self, keys: KeySet, issuer: str, leeway: float) -> None:
        self.keys = keys
        self.issuer = issuer
        self.leeway = leeway

    def issue(
        self,
        *,
        typ: str,
        user_id: int,
        role: str,
        sid: str,
        actions: frozenset[Action],
        scope: Scope,
        ttl: float,
        now: float | None = None,
        parents: tuple[str, ...] = (),
    ) -> IssuedToken:
        now = time.time() if now is None else now
        # iat keeps milliseconds so that a per-user cut-off taken a moment before a new login
        # does not catch the new token (RFC 7519 NumericDate allows fractions). Truncated, not
        # rounded: rounding up would let a token issued just before a cut-off escape it.
        issued_at = math.floor(now * 1000) / 1000
        expires_at = int(now + ttl)
        jti = str(uuid.uuid4())
        network_ids, device_ids = scope.claims()
        payload = {
            "iss": self.issuer,
            "sub": str(user_id),
            "jti": jti,
            "iat": issued_at,
            "exp": expires_at,
            "typ": typ,
            "sid": sid,
            "role": role,
            "actions": sorted(int(action) for action in actions),
            "networkIds": network_ids,
            "deviceIds": device_ids,
        }
        if parents:
            payload["fam"] = list(parents)
        if scope.plugin_id is not None and scope.topic is not None:
            payload["plugin"] = plugin_claim(scope.plugin_id, scope.topic)
        key = self.keys.current
        assert key.signing is not None, "the current key always signs"
        token = jwt.encode(payload, key.signing, algorithm=key.algorithm, headers={"kid": key.kid})
        return IssuedToken(token=token, jti=jti, issued_at=issued_at, expires_at=expires_at)

    def decode(self, token: str, typ: str) -> dict[str, Any]:
        """Verified claims, or TokenExpired, or Unauthorized ("Invalid token")."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized("Invalid token") from None
        kid = header.get("kid")
        key = self.keys.by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("Invalid token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.verifying,
                algorithms=[key.algorithm],
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except jwt.InvalidTokenError:
            raise Unauthorized("Invalid token") from None
        if claims.get("typ") != typ:
            article = "an" if typ == ACCESS else "a"
            raise Unauthorized(f"Invalid token: expected {article} {typ} token")
        return claims

    def principal(self, token: str, typ: str = ACCESS) -> Principal:
        return principal_from_claims(self.decode(token, typ))


def _id_list(value: Any, kind: type, name: str) -> frozenset[Any] | None:
    if not isinstance(value, list):
        raise Unauthorized(f"Invalid token: {name} must be a list")
    if value == [WILDCARD]:
        return None
    if not all(isinstance(item, kind) and not isinstance(item, bool) for item in value):
        raise Unauthorized(f"Invalid token: malformed {name}")
    return frozenset(value)


@functools.lru_cache(maxsize=1024)
def _actions(ids: tuple[int, ...]) -> frozenset[Action]:
    """One shared set per distinct action list: thousands of sessions hold a handful of sets."""
    return frozenset(Action(i) for i in ids)


@functools.lru_cache(maxsize=4096)
def _scope(
    network_ids: frozenset[int] | None,
    device_ids: frozenset[str] | None,
    plugin_id: int | None,
    topic: Topic | None,
) -> Scope:
    """One shared scope per distinct reach: a user's sessions mostly carry the same one."""
    return Scope(network_ids=network_ids, device_ids=device_ids, plugin_id=plugin_id, topic=topic)


_user_id = functools.lru_cache(maxsize=4096)(int)
"""One int per user, not one per session."""


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        user_id = _user_id(claims["sub"])
        actions = _actions(tuple(int(a) for a in claims.get("actions", [])))
    except (TypeError, ValueError):
        raise Unauthorized("Invalid token: malformed claims") from None
    role = claims.get("role")
    parents = claims.get("fam", [])
    if (
        role not in ("admin", "client")
        or not isinstance(claims["sid"], str)
        or not isinstance(parents, list)
        or len(parents) > _MAX_PARENTS
        or not all(isinstance(parent, str) for parent in parents)
    ):
        raise Unauthorized("Invalid token: malformed claims")
    plugin_id, topic = _plugin(claims.get("plugin"))
    return Principal(
        user_id=user_id,
        role="admin" if role == "admin" else "client",  # shared, not one string per session
        actions=actions,
        scope=_scope(
            _id_list(claims.get("networkIds", [WILDCARD]), int, "networkIds"),
            _id_list(claims.get("deviceIds", [WILDCARD]), str, "deviceIds"),
            plugin_id,
            topic,
        ),
        jti=str(claims["jti"]),
        sid=claims["sid"],
        issued_at=float(claims["iat"]),
        expires_at=float(claims["exp"]),
        parents=tuple(parents),
    )


def topic_claims(topic: Topic) -> dict[str, Any]:
    """A topic as tokens, the plugins table and the authenticate endpoint write it."""
    listed = (topic.network_ids, topic.device_type_ids, topic.names)
    network_ids, device_type_ids, names = (None if v is None else sorted(v) for v in listed)
    return {
        "networkIds": network_ids,
        "deviceTypeIds": device_type_ids,
        "names": names,
        "notifications": topic.notifications,
        "commands": topic.commands,
    }


def plugin_claim(plugin_id: int, topic: Topic) -> dict[str, Any]:
    return {"id": plugin_id, "topic": topic_claims(topic)}


def _plugin(claim: Any) -> tuple[int | None, Topic | None]:
    """The ``plugin`` claim of a plugin's token: its id and topic."""
    if claim is None:
        return None, None
    try:
        topic = claim["topic"]
        plugin_id = claim["id"]
        parsed = Topic(
            network_ids=_optional_ids(topic["networkIds"], int),
            device_type_ids=_optional_ids(topic["deviceTypeIds"], int),
            names=_optional_ids(topic["names"], str),
            notifications=topic["notifications"] is True,
            commands=topic["commands"] is True,
        )
    except (KeyError, TypeError):
        raise Unauthorized("Invalid token: malformed plugin claim") from None
    if not isinstance(plugin_id, int) or isinstance(plugin_id, bool):
        raise Unauthorized("Invalid token: malformed plugin claim")
    return plugin_id, parsed


def _optional_ids(value: Any, kind: type) -> frozenset[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(item, kind) and not isinstance(item, bool) for item in value
    ):
        raise TypeError("malformed list")
    return frozenset(value)
