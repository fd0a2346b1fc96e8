"""The replay of a subscription given a ``timestamp``, without a gap and without a duplicate.

It runs in a task of the session's beside the read loop (the session's other requests are
answered meanwhile). The subscription is live from the start: pushes that arrive during the
replay are held back (counted against the session's queue limits, see ``Session.hold``) and
sent after the stored items, skipping those the replay already sent, paced by the client's
reading.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson

from gateway.devices.messages import last_changed
from gateway.realtime.dispatcher import Context, Reply
from gateway.realtime.protocol import push
from gateway.realtime.session import Session
from gateway.realtime.subscription import Subscription
from gateway.store.stored import Selection
from gateway.types import NOTIFICATION, Command, Notification, Principal

_REPLAY_STALL = 10.0
"""How long a replay waits for a client to read before sending on regardless (and the session
is then closed as a slow consumer if its queue overflows)."""

Memberships = Callable[[int], frozenset[int]]
TypeAllowed = Callable[[int, int | None], bool]


def _any_type(user_id: int, device_type_id: int | None) -> bool:
    return True


async def _send_paced(session: Session, data: bytes) -> None:
    """Send one replayed frame, first letting the writer drain a half-full queue: a replay may
    hold more items than the outbound queue, and a client reading at its own pace is not a slow
    consumer."""
    if session.backlogged(len(data)):
        await session.flush(_REPLAY_STALL)
    session.send(data)


def _may_see(
    subscription: Subscription,
    principal: Principal | None,
    memberships: Memberships,
    item: Notification | Command,
    type_allowed: TypeAllowed = _any_type,
) -> bool:
    """Checked per item: the token may expire and memberships change during a replay."""
    return principal is not None and (
        subscription.wants(item.network_id, item.device_type_id, item.name)
        and principal.may_reach(item.device_id, item.network_id, memberships(principal.user_id))
        and (principal.is_admin or type_allowed(principal.user_id, item.device_type_id))
    )


def replayer(
    ctx: Context, subscription: Subscription, since: float
) -> Callable[[], Awaitable[Reply]]:
    """Read what the replay sends (after the flush barrier on a cluster), then answer the
    subscribe and stream; a failed read withdraws the subscription and becomes the error reply."""

    async def read() -> Reply:
        principal = subscription.session.principal
        network_ids = subscription.network_ids
        if (
            subscription.device_id is None
            and network_ids is None
            and principal is not None
            and not (principal.is_admin and principal.scope.network_ids is None)
        ):
            # Read only the caller's networks: a client's catch-all replay must not make
            # PostgreSQL read every network's rows for the per-item check to throw away.
            network_ids = frozenset(ctx.hub.reachable_networks(principal))
        try:
            history = await ctx.messages.history(
                subscription.kind,
                since,
                Selection(
                    device_ids=None if subscription.device_id is None else [subscription.device_id],
                    network_ids=network_ids,
                    names=subscription.names,
                ),
                updated=subscription.with_updates,
            )
            items = await history.next_page() or []
        except BaseException:
            ctx.hub.unsubscribe(subscription)
            subscription.session.release(subscription, done=True)
            raise

        async def stream() -> None:
            await replay(
                subscription,
                items,
                ctx.registry.memberships,
                ctx.registry.type_allowed,
                more=history.next_page,
                since=since,
            )

        return Reply({"subscriptionId": subscription.id}, stream)

    return read


async def replay(
    subscription: Subscription,
    items: list[Notification | Command],
    memberships: Memberships,
    type_allowed: TypeAllowed = _any_type,
    *,
    more: Callable[[], Awaitable[list[Notification | Command] | None]] | None = None,
    since: float | None = None,
) -> None:
    """Send ``items`` (read after the subscription went live) and the pages ``more`` reads
    after them (a failed read ends the session with 1011, see the dispatcher), then the
    held-back pushes. A command created before ``since`` and changed after it goes as a
    ``command/update``: the client knew the command, not its new state."""
    session = subscription.session
    sent: dict[int, float] = {}
    """Item id -> when the state sent took effect: a newer state of a command already sent
    (an update merged from the pending ones into a later page) goes again as an update."""
    with_updates = subscription.with_updates
    action, key = (
        ("notification/insert", b"notification")
        if subscription.kind == NOTIFICATION
        else ("command/insert", b"command")
    )

    def active() -> bool:
        return not session.closing and subscription.id in session.subscriptions

    try:
        page: list[Notification | Command] | None = items
        while page:
            for item in page:
                if not active():
                    return
                known = sent.get(item.id)
                if (
                    known is not None and not (with_updates and last_changed(item) > known)
                ) or not _may_see(
                    subscription, session.live_principal, memberships, item, type_allowed
                ):
                    continue
                sent[item.id] = last_changed(item)
                pushed = (
                    "command/update"
                    if known is not None
                    or (since is not None and item.timestamp <= since and key == b"command")
                    else action
                )
                frame = push(pushed, subscription.id_bytes, key, orjson.dumps(item.to_json()))
                await _send_paced(session, frame)
            page = None if more is None else await more()
        # Live pushes that arrived meanwhile; more may arrive while these are paced out.
        while subscription.replay_buffer and active():
            for item_id, data in session.release(subscription, done=False):
                if item_id is None or item_id not in sent:
                    await _send_paced(session, data)
    finally:
        held = session.release(subscription, done=True)
        if active():
            for item_id, data in held:
                if item_id is None or item_id not in sent:
                    session.send(data)
