"""Fan-out across two instances: the devices on one, their dashboards on the other.

Two gateways on the run's Redis against two bare relays joined by Redis (``bench/baseline.py
--redis``: one PUBLISH per insert, on its device's channel, and nothing else). The 10-device
1:1 shape (each dashboard subscribed by ``deviceId``), at a fixed rate and at "max" (16 inserts
in flight per device); every item crosses Redis once. Server CPU is the sum of both instances,
which share the server core. What it shows: the cost of the cluster path (the interest
announcements, one publish per item, the echo dropped unparsed) against the least a cluster of
relays has to do.
"""

from __future__ import annotations

import uuid
from typing import Any

from bench import fanout
from bench.common import Context

TOPOLOGY = "1:1 x10"


def parameters(quick: bool) -> dict[str, Any]:
    params = fanout.parameters(quick)
    params["topologies"] = {TOPOLOGY: {"kind": "1:1", "devices": 10, "rates": [2000]}}
    params["rounds"] = 1 if quick else 2
    params["profile_seconds"] = 0
    return params


async def run(ctx: Context) -> dict[str, Any]:
    params = parameters(ctx.quick)
    tag = f"cl{uuid.uuid4().hex[:6]}"
    devices = await ctx.start_gateway("gateway-cluster-a", redis=True)  # first: it migrates
    dashboards = await ctx.start_gateway("gateway-cluster-b", redis=True)
    relay = await ctx.start_baseline("baseline-cluster-a", redis=True)
    relay_partner = await ctx.start_baseline("baseline-cluster-b", redis=True)
    servers = {"baseline": relay, "gateway": devices}
    partners = {"baseline": relay_partner, "gateway": dashboards}
    try:
        fixture = await fanout._gateway_fixture(devices, tag)
        phases = fanout._phases(params, TOPOLOGY)
        runs = await fanout.compare(
            ctx, servers, TOPOLOGY, params, fixture, phases, tag, partners=partners
        )
    finally:
        for server in (relay, relay_partner, devices, dashboards):
            ctx.stop(server)
    return {"parameters": params, "runs": runs, "summary": fanout.summarize(runs)}
