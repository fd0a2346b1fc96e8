"""The repository of networks and devices."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import asyncpg

from gateway.errors import Conflict, Unprocessable
from gateway.store.db import Pool
from gateway.types import Device, Network

_SAVE_ATTEMPTS = 3
"""A save whose device was created concurrently decides again on it; more races than this
in a row are a 409."""


def _network(row: asyncpg.Record) -> Network:
    return Network(id=row["id"], name=row["name"], description=row["description"])


def _device(row: asyncpg.Record) -> Device:
    return Device(
        id=row["id"],
        name=row["name"],
        data=row["data"],
        network_id=row["network_id"],
        device_type_id=row["device_type_id"],
        is_blocked=row["is_blocked"],
    )


class DeviceStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    # -- networks --------------------------------------------------------------------------

    async def create_network(self, name: str, description: str | None) -> Network:
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO networks (name, description) VALUES ($1, $2) RETURNING *",
                name,
                description,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a network named {name!r} already exists") from None
        assert row is not None
        return _network(row)

    async def update_network(self, network_id: int, changes: dict[str, Any]) -> Network | None:
        if not changes:
            return await self.get_network(network_id)
        columns = list(changes)
        assignments = ", ".join(f"{col} = ${i + 2}" for i, col in enumerate(columns))
        try:
            row = await self.pool.fetchrow(
                f"UPDATE networks SET {assignments} WHERE id = $1 RETURNING *",  # noqa: S608
                network_id,
                *changes.values(),
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a network named {changes.get('name')!r} already exists") from None
        return None if row is None else _network(row)

    async def get_network(self, network_id: int) -> Network | None:
        row = await self.pool.fetchrow("SELECT * FROM networks WHERE id = $1", network_id)
        return None if row is None else _network(row)

    async def networks(self, only: Iterable[int] | None = None) -> list[Network]:
        if only is None:
            rows = await self.pool.fetch("SELECT * FROM networks ORDER BY id")
        else:
            rows = await self.pool.fetch(
                "SELECT * FROM networks WHERE id = any($1::bigint[]) ORDER BY id", list(only)
            )
        return [_network(row) for row in rows]

    async def delete_network(self, network_id: int) -> list[str] | None:
        """Delete a network and its devices; returns the ids of the devices removed."""
        async with self.pool.acquire() as conn, conn.transaction():
            devices = await conn.fetch("SELECT id FROM devices WHERE network_id = $1", network_id)
            deleted = await conn.execute("DELETE FROM networks WHERE id = $1", network_id)
        if deleted == "DELETE 0":
            return None
        return [row["id"] for row in devices]

    # -- devices ---------------------------------------------------------------------------

    async def get_device(self, device_id: str) -> Device | None:
        row = await self.pool.fetchrow("SELECT * FROM devices WHERE id = $1", device_id)
        return None if row is None else _device(row)

    async def devices(
        self,
        networks: Iterable[int] | None = None,
        limit: int = 1000,
        after: str = "",
        *,
        only: Iterable[str] | None = None,
        device_types: Iterable[int] | None = None,
    ) -> list[Device]:
        """Devices by id after ``after``: within ``networks``, ``only`` these ids and, when
        ``device_types`` is given, of one of them or of none (None: no such filter). Filtered
        here, before the limit, so that a page is never cut short."""
        return await self.device_page(
            networks, only=only, device_types=device_types, after=after, limit=limit
        )

    async def device_page(
        self,
        networks: Iterable[int] | None,
        *,
        only: Iterable[str] | None = None,
        device_types: Iterable[int] | None = None,
        network_id: int | None = None,
        name: str | None = None,
        after: str = "",
        by_name: bool = False,
        descending: bool = False,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Device]:
        """One page of the devices ``devices`` describes, also of ``network_id`` and named
        ``name`` when given, sorted by id or by name (code point order, then id)."""
        column = 'name COLLATE "C"' if by_name else "id"
        order = f"{column} {'DESC' if descending else 'ASC'}"
        rows = await self.pool.fetch(
            f"""SELECT * FROM devices
               WHERE ($1::bigint[] IS NULL OR network_id = any($1::bigint[])) AND id > $2
                 AND ($3::text[] IS NULL OR id = any($3::text[]))
                 AND ($4::bigint[] IS NULL OR device_type_id IS NULL
                      OR device_type_id = any($4::bigint[]))
                 AND ($5::bigint IS NULL OR network_id = $5)
                 AND ($6::text IS NULL OR name = $6)
               ORDER BY {order}, id LIMIT $7 OFFSET $8""",  # noqa: S608 - fixed identifiers
            None if networks is None else list(networks),
            after,
            None if only is None else list(only),
            None if device_types is None else list(device_types),
            network_id,
            name,
            limit,
            offset,
        )
        return [_device(row) for row in rows]

    async def save_device(self, device: Device) -> tuple[Device, Device | None]:
        """Create or replace; returns the saved device and the one it replaced."""
        return await self.save_device_as(device.id, lambda _: device)

    async def save_device_as(
        self, device_id: str, decide: Callable[[Device | None], Device]
    ) -> tuple[Device, Device | None]:
        """Create or change a device from what it is: ``decide`` gets the row as it stands,
        locked (None: there is none), and returns the device to write or raises to write
        nothing. So no check passes on a copy that a concurrent request, or another instance
        whose message has not arrived, changed meanwhile. Returns the saved device and the
        one it replaced."""
        for _ in range(_SAVE_ATTEMPTS):
            device: Device | None = None
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    found = await conn.fetchrow(
                        "SELECT * FROM devices WHERE id = $1 FOR UPDATE", device_id
                    )
                    old = None if found is None else _device(found)
                    device = decide(old)
                    values = (
                        device_id,
                        device.name,
                        device.data,
                        device.network_id,
                        device.device_type_id,
                        device.is_blocked,
                    )
                    if old is None:
                        row = await conn.fetchrow(
                            """INSERT INTO devices
                                   (id, name, data, network_id, device_type_id, is_blocked)
                               VALUES ($1, $2, $3, $4, $5, $6)
                               ON CONFLICT (id) DO NOTHING RETURNING *""",
                            *values,
                        )
                    else:
                        row = await conn.fetchrow(
                            """UPDATE devices SET name = $2, data = $3, network_id = $4,
                                   device_type_id = $5, is_blocked = $6
                               WHERE id = $1 RETURNING *""",
                            *values,
                        )
            except asyncpg.ForeignKeyViolationError as exc:
                assert device is not None
                if exc.constraint_name == "devices_device_type_fkey":
                    raise Unprocessable(
                        f"deviceTypeId: no such device type: {device.device_type_id}"
                    ) from None
                raise Unprocessable(f"networkId: no such network: {device.network_id}") from None
            if row is not None:
                return _device(row), old
            # Created by someone else since the read: decide again on that device.
        raise Conflict(f"Device {device_id} changed while it was being saved; retry")

    async def delete_device(
        self, device_id: str, check: Callable[[Device], None] | None = None
    ) -> bool:
        """Delete a device; ``check`` sees it as it stands, locked, and may raise to keep it."""
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetchrow("SELECT * FROM devices WHERE id = $1 FOR UPDATE", device_id)
            if found is None:
                return False
            if check is not None:
                check(_device(found))
            await conn.execute("DELETE FROM devices WHERE id = $1", device_id)
        return True

    async def devices_by_id(self, device_ids: Iterable[str]) -> dict[str, Device]:
        rows = await self.pool.fetch(
            "SELECT * FROM devices WHERE id = any($1::text[])", list(device_ids)
        )
        return {row["id"]: _device(row) for row in rows}

    async def networks_of(self, device_ids: Iterable[str]) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT id, network_id FROM devices WHERE id = any($1::text[])", list(device_ids)
        )
        return {row["id"]: row["network_id"] for row in rows}
