"""A multimap that stores a lone value as itself, not in a one-element set.

Most keys (a token id, a login session, a user) map to one live session, and a one-element set
costs ten times the slot."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Hashable)


class Index(Generic[K, V]):
    __slots__ = ("_map",)

    def __init__(self) -> None:
        self._map: dict[K, V | set[V]] = {}

    def __len__(self) -> int:
        return len(self._map)

    def add(self, key: K, value: V) -> None:
        current = self._map.get(key)
        if current is None:
            self._map[key] = value
        elif isinstance(current, set):
            current.add(value)
        elif current != value:
            self._map[key] = {current, value}

    def discard(self, key: K, value: V) -> None:
        current = self._map.get(key)
        if current is None:
            return
        if isinstance(current, set):
            current.discard(value)
            if len(current) == 1:
                self._map[key] = next(iter(current))
            elif not current:
                del self._map[key]
        elif current == value:
            del self._map[key]

    def get(self, key: K) -> list[V]:
        current = self._map.get(key)
        if current is None:
            return []
        if isinstance(current, set):
            return list(current)
        return [current]
