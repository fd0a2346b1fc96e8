"""Reading stored notifications and commands page by page, pending ones included.

Items are acknowledged before they are written (the batch writer), so every read merges the
pending set in: a client that just got an id back finds the item in the history at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from gateway.clock import at
from gateway.errors import Unprocessable
from gateway.store.messages import MessageStore
from gateway.store.rows import KINDS, payload_bytes, without_payloads
from gateway.types import Command, Notification

Item = Notification | Command

_CURSOR = re.compile(r"(\d{1,17})-(\d{1,18})")
_LAST_MICROS = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def micros(epoch: float) -> int:
    return round(epoch * 1_000_000)


def cursor_of(item: Item, updated: bool = False) -> str:
    """An opaque position after ``item`` in (timestamp, id) order (lastUpdated if ``updated``)."""
    return f"{micros(_updated(item) if updated else item.timestamp)}-{item.id}"


def parse_cursor(text: str, field: str = "cursor") -> tuple[int, int]:
    match = _CURSOR.fullmatch(text)
    if match is None or int(match.group(1)) > _LAST_MICROS:
        raise Unprocessable(f"{field}: not a cursor this server handed out: {text[:80]!r}")
    return int(match.group(1)), int(match.group(2))


def _sort_key(query: Query) -> Callable[[Item], tuple[Any, ...]]:
    def stamp(item: Item) -> int:
        return micros(_updated(item) if query.updated else item.timestamp)

    if query.sort == "name":
        return lambda item: (item.name, stamp(item), item.id)
    return lambda item: (stamp(item), item.id)


@dataclass(frozen=True, slots=True)
class Query:
    """What to read: one kind, any of these devices, in a time window, page by page.

    ``after`` is a cursor position (timestamp in microseconds, id), exclusive in the direction
    of reading; ``since`` is exclusive and ``until`` inclusive (seconds since the epoch)."""

    kind: str
    item_id: int | None = None
    device_ids: Collection[str] | None = None
    network_ids: Collection[int] | None = None
    device_type_ids: Collection[int] | None = None
    names: Collection[str] | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    after: tuple[int, int] | None = None
    sort: str = "timestamp"
    descending: bool = False
    updated: bool = False
    open_types: frozenset[int] | None = None
    """Only devices of these types, or untyped (a client's device type access)."""
    """Commands changed after they were inserted, by ``lastUpdated`` (since, until, after and
    the order then apply to it)."""
    limit: int = 100
    offset: int = 0

    def matches(self, item: Item) -> bool:
        stamp = micros(_updated(item) if self.updated else item.timestamp)
        if self.updated and not _updated(item) > item.timestamp:
            return False
        if self.after is not None:
            position = (stamp, item.id)
            if (position >= self.after) if self.descending else (position <= self.after):
                return False
        return (
            (self.item_id is None or item.id == self.item_id)
            and (
                self.open_types is None
                or item.device_type_id is None
                or item.device_type_id in self.open_types
            )
            and (self.device_ids is None or item.device_id in self.device_ids)
            and (self.network_ids is None or item.network_id in self.network_ids)
            and (self.device_type_ids is None or item.device_type_id in self.device_type_ids)
            and (self.names is None or item.name in self.names)
            and (self.status is None or getattr(item, "status", None) == self.status)
            and (self.since is None or stamp > micros(self.since))
            and (self.until is None or stamp <= micros(self.until))
        )


def _list(values: Collection[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


async def find(messages: MessageStore, query: Query) -> list[Item]:
    """One page of ``query``: the stored rows and the pending items that match, in order."""
    table, name_column, columns, make = KINDS[query.kind]
    direction = "DESC" if query.descending else "ASC"
    stamp = "last_updated" if query.updated else '"timestamp"'
    order = {
        "timestamp": f"{stamp} {direction}, id {direction}",
        # In code points, as the merge with pending items sorts (whatever the database's
        # collation): else the window read here is not the one the merge cuts a page from.
        "name": f'{name_column} COLLATE "C" {direction}, {stamp} {direction}, id {direction}',
    }[query.sort]
    compare = "<" if query.descending else ">"
    after_at, after_id = (
        (None, None) if query.after is None else (at(query.after[0] / 1e6), query.after[1])
    )
    window = query.offset + query.limit
    # Pending first: an item written while the read runs is then in one or the other.
    pending = messages.pending(query.kind)
    # The window (up to skip + take rows) is read without its payloads, which only the page's
    # own rows are read with: a deep skip over big items must not hold them all in memory.
    rows = await messages.pool.fetch(
        f"""SELECT {without_payloads(columns)} FROM {table}
            WHERE ($1::text[] IS NULL OR device_id = any($1::text[]))
              AND ($2::bigint[] IS NULL OR network_id = any($2::bigint[]))
              AND ($3::bigint[] IS NULL OR device_type_id = any($3::bigint[]))
              AND ($4::text[] IS NULL OR {name_column} = any($4::text[]))
              AND ($5::timestamptz IS NULL OR {stamp} > $5)
              AND ($6::timestamptz IS NULL OR {stamp} <= $6)
              AND ($7::timestamptz IS NULL OR ({stamp}, id) {compare} ($7, $8::bigint))
              AND ($10::bigint IS NULL OR id = $10)
              AND ($11::bigint[] IS NULL OR device_type_id IS NULL
                   OR device_type_id = any($11::bigint[]))
              {'AND last_updated > "timestamp"' if query.updated else ""}
              {"AND status IS NOT DISTINCT FROM $12" if query.status is not None else ""}
            ORDER BY {order} LIMIT $9""",  # noqa: S608 - fixed identifiers
        _list(query.device_ids),
        _list(query.network_ids),
        _list(query.device_type_ids),
        _list(query.names),
        None if query.since is None else at(query.since),
        None if query.until is None else at(query.until),
        after_at,
        after_id,
        window,
        query.item_id,
        _list(query.open_types),
        *((query.status,) if query.status is not None else ()),
    )
    by_id: dict[int, Item] = {row["id"]: make(row) for row in rows}
    light = dict(by_id)
    for item in pending:
        stored = by_id.get(item.id)
        if stored is not None and _updated(stored) > _updated(item):
            continue  # written in a newer state while we read
        if query.matches(item):
            by_id[item.id] = item
        else:
            by_id.pop(item.id, None)  # e.g. its status changed since it was written
    ordered = sorted(by_id.values(), key=_sort_key(query), reverse=query.descending)
    page = ordered[query.offset : window]
    wanted = [item.id for item in page if light.get(item.id) is item]
    await _within_budget(messages, query, page, wanted)
    if not wanted:
        return page
    full = await messages.by_ids(query.kind, wanted)
    # Each stored row of the page with its payloads (one purged meanwhile is left out).
    return [
        full[item.id] if light.get(item.id) is item else item
        for item in page
        if item.id in full or light.get(item.id) is not item
    ]


async def _within_budget(
    messages: MessageStore, query: Query, page: list[Item], wanted: list[int]
) -> None:
    """Refuse a page whose payloads exceed ``messages.page_max_bytes`` before they are read:
    1,000 items of 1 MiB (a REST body) would have been 1 GB in memory for one request. A page
    of one item is always served, or that item could never be read."""
    if len(page) < 2:
        return
    budget = messages.page_max_bytes
    stored = set(wanted)
    held = sum(
        len(item.name)
        + payload_bytes(item.parameters)
        + payload_bytes(getattr(item, "result", None))
        for item in page
        if item.id not in stored
    )
    total = held
    if wanted and held <= budget:
        total += await messages.stored_payload_bytes(query.kind, wanted)
    if total > budget:
        raise Unprocessable(
            f"the {len(page)} items asked for hold {total} bytes of payload, more than "
            f"GATEWAY_HISTORY_PAGE_MAX_BYTES ({budget}) allows in one reply; ask for fewer"
        )


def _updated(item: Item) -> float:
    return item.last_updated if isinstance(item, Command) else item.timestamp


def any_pending(messages: MessageStore, query: Query) -> bool:
    """Whether an acknowledged item not yet written matches (a cheap test before a read)."""
    return any(query.matches(item) for item in messages.pending(query.kind))
