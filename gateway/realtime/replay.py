"""The replay of a subscription given a ``timestamp``, without a gap and without a duplicate.

Stored items newer than the timestamp go first, then what arrived live meanwhile (held back in
the subscription's buffer), paced by the client's reading."""

from __future__ import annotations

import orjson

from gateway.realtime.dispatcher import After, Context
from gateway.realtime.protocol import push
from gateway.realtime.session import Session, Subscription
from gateway.types import NOTIFICATION

_REPLAY_STALL = 10.0
"""How long a replay waits for a client to read before sending on regardless (and the session
is then closed as a slow consumer if its queue overflows)."""


async def _send_paced(session: Session, data: bytes) -> None:
    """Send one replayed frame, first letting the writer drain a half-full queue: a replay may
    hold more items than the outbound queue, and a client reading at its own pace is not a slow
    consumer."""
    if session.backlogged():
        await session.flush(_REPLAY_STALL)
    session.send(data)


def replayer(ctx: Context, subscription: Subscription, since: float) -> After:
    """The replay of ``subscription`` from ``since``, to run after the subscribe reply."""

    async def replay() -> None:
        session = subscription.session
        sent: set[int] = set()
        try:
            devices = None if subscription.device_id is None else [subscription.device_id]
            items = await ctx.messages.history(
                subscription.kind,
                since,
                device_ids=devices,
                network_ids=subscription.network_ids,
                names=subscription.names,
            )
            action, key = (
                ("notification/insert", b"notification")
                if subscription.kind == NOTIFICATION
                else ("command/insert", b"command")
            )
            memberships = ctx.registry.memberships
            for item in items:
                if session.closing:
                    return
                principal = session.live_principal
                if principal is None or not (
                    subscription.wants(item.network_id, item.device_type_id, item.name)
                    and principal.may_reach(
                        item.device_id, item.network_id, memberships(principal.user_id)
                    )
                ):
                    continue
                sent.add(item.id)
                frame = push(action, subscription.id_bytes, key, orjson.dumps(item.to_json()))
                await _send_paced(session, frame)
            # Live items that arrived meanwhile; more may arrive while these are paced out.
            while subscription.replay_buffer and not session.closing:
                buffered, subscription.replay_buffer = subscription.replay_buffer, []
                for item_id, data in buffered:
                    if item_id is None or item_id not in sent:
                        await _send_paced(session, data)
        finally:
            buffered = subscription.replay_buffer or []
            subscription.replay_buffer = None
            for item_id, data in buffered:
                if item_id is None or item_id not in sent:
                    session.send(data)

    return replay
