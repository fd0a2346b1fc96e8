"""The per-message authorization check alone, in microseconds per message.

It is the condition the hub evaluates for every (message, subscription) pair: the session is
live, the token holds the read permission (a bit test), the subscription wants the message, the
principal reaches the device (token scope and the user's current memberships) and the token is
not revoked (dict look-ups). Timed with ``timeit`` in a process of its own on the server's CPU,
against a revocation view holding a few thousand entries, so that the look-ups are not trivially
cached. For scale it also times what decoding the JWT on every message would cost instead.
"""

from __future__ import annotations

import asyncio
import sys
import time
import timeit
import uuid
from typing import Any

import orjson

from bench.infra import PYTHON, child_setup

NUMBER = 100_000
REPEAT = 5


class _Session:
    """The three session fields the hub reads before the check."""

    __slots__ = ("closing", "expired", "principal")

    def __init__(self, principal: Any) -> None:
        self.principal = principal
        self.expired = False
        self.closing = False


def _fixture(role: str) -> dict[str, Any]:
    from gateway.auth.permissions import ROLES
    from gateway.auth.revocation import RevocationView
    from gateway.auth.tokens import ACCESS, KeySet, TokenCodec
    from gateway.bus.control import Control
    from gateway.bus.memory import MemoryBus
    from gateway.config import Settings
    from gateway.devices.registry import Registry
    from gateway.realtime.subscription import Subscription
    from gateway.types import NOTIFICATION, Action, Principal, Revocation, Scope

    now = time.time()
    codec = TokenCodec(KeySet.from_settings(Settings(jwt_secret="x" * 48)), "gateway", 10.0)
    issued = codec.issue(
        typ=ACCESS,
        user_id=42,
        role=role,
        sid=str(uuid.uuid4()),
        actions=ROLES[role],
        scope=Scope(),
        ttl=3600.0,
    )
    principal: Principal = codec.principal(issued.token, ACCESS)
    view = RevocationView()
    for index in range(2000):
        for kind in ("jti", "sid"):
            view.apply(Revocation(kind, str(uuid.uuid4()), "bench", now, now + 3600))
        if index < 200:
            view.apply(Revocation("user", str(1000 + index), "bench", now, now + 3600))
            view.apply(Revocation("device", f"other-{index}", "bench", now, now + 3600))
    registry = Registry(None, None, Control(MemoryBus("bench")))  # type: ignore[arg-type]
    registry._memberships[42] = frozenset({1, 2, 3})
    session = _Session(principal)
    subscription = Subscription(
        id=1,
        session=session,  # type: ignore[arg-type]
        kind=NOTIFICATION,
        device_id=None,
        network_ids=frozenset({2}),
        device_type_ids=None,
        names=None,
    )
    return {
        "principal": principal,
        "session": session,
        "subscription": subscription,
        "memberships": registry.memberships,
        "is_revoked": view.is_revoked,
        "needed": Action.GetDeviceNotification,
        "wanted_kind": NOTIFICATION,
        "device_id": "device-7",
        "network_id": 2,
        "device_type_id": None,
        "name": "temperature",
        "codec": codec,
        "token": issued.token,
        "ACCESS": ACCESS,
    }


# The hub's per-recipient condition (gateway/realtime/hub.py, Hub.deliver), verbatim in substance.
FULL_CHECK = """
session = subscription.session
principal = session.principal
ok = (
    principal is not None and not session.expired and not session.closing
    and subscription.kind == wanted_kind
    and principal.mask >> needed & 1
    and subscription.wants(network_id, device_type_id, name)
    and principal.may_reach(device_id, network_id, memberships(principal.user_id))
    and not is_revoked(principal)
)
"""

PARTS = {
    "Principal.may": "principal.may(needed)",
    "Subscription.wants": "subscription.wants(network_id, device_type_id, name)",
    "Principal.may_reach": (
        "principal.may_reach(device_id, network_id, memberships(principal.user_id))"
    ),
    "RevocationView.is_revoked": "is_revoked(principal)",
    "decode the JWT instead (per message)": "codec.principal(token, ACCESS)",
}


def _time(statement: str, names: dict[str, Any], number: int) -> float:
    """Best of REPEAT runs, microseconds per execution."""
    timer = timeit.Timer(statement, globals=names)
    return min(timer.repeat(repeat=REPEAT, number=number)) / number * 1e6


def measure() -> dict[str, Any]:
    results: dict[str, Any] = {"number": NUMBER, "repeat": REPEAT, "roles": {}}
    for role in ("client", "admin"):
        names = _fixture(role)
        assert eval(
            "principal.may_reach(device_id, network_id, memberships(principal.user_id))", names
        )
        row: dict[str, float] = {"full check": _time(FULL_CHECK, names, NUMBER)}
        for label, statement in PARTS.items():
            number = NUMBER // 100 if "JWT" in label else NUMBER
            row[label] = _time(statement, names, number)
        row["empty statement (timeit floor)"] = _time("pass", names, NUMBER)
        results["roles"][role] = row
    full = results["roles"]["client"]["full check"]
    results["check_us"] = full
    results["target_us"] = 2.0
    results["met"] = full <= 2.0
    results["jwt_decode_vs_check"] = (
        results["roles"]["client"]["decode the JWT instead (per message)"] / full
    )
    return results


async def run(ctx: Any) -> dict[str, Any]:
    """Runs this module as its own process on the server's CPU and returns its JSON."""
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "bench.authcheck",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=child_setup(ctx.server_cpus),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    if process.returncode != 0:
        raise RuntimeError(f"authcheck failed: {stderr.decode(errors='replace')[-500:]}")
    result: dict[str, Any] = orjson.loads(stdout)
    return result


if __name__ == "__main__":
    sys.stdout.write(orjson.dumps(measure()).decode() + "\n")
