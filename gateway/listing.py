"""DeviceHive's listing parameters (take, skip, sortField, sortOrder, name, namePattern), declared
once for the REST routes, the WebSocket actions and the DeviceHive dialect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.errors import Unprocessable
from gateway.schema import Int, Schema, Str

MAX_TAKE = 1000
MAX_SKIP = 100_000
"""Bounds of a page: a skip is read and thrown away by PostgreSQL, so it cannot be unbounded."""


class LikePattern(Str):
    """An SQL LIKE pattern (``%`` and ``_`` wildcards, ``\\`` escapes the next character).

    PostgreSQL refuses a pattern that ends with a lone escape, but only once a row makes the
    matcher reach that end: refused here, whatever the data."""

    def _check(self, value: Any, path: str) -> Any:
        if isinstance(value, str) and (len(value) - len(value.rstrip("\\"))) % 2:
            raise Unprocessable(
                f"{path}: a LIKE pattern must not end with a lone backslash (write \\\\ for one)"
            )
        return super()._check(value, path)


def like_pattern(max_length: int, description: str | None = None) -> LikePattern:
    return LikePattern(
        min_length=1,
        max_length=max_length,
        pattern=r"(?:[^\\]|\\[\s\S])*",
        description=description,
    )


def paging(sort_fields: Sequence[str], max_skip: int = MAX_SKIP) -> dict[str, Schema]:
    """take, skip, sortField (one of ``sort_fields``) and sortOrder."""
    return {
        "sortField": Str(enum=list(sort_fields)),
        "sortOrder": Str(enum=["ASC", "DESC"]),
        "take": Int(minimum=1, maximum=MAX_TAKE),
        "skip": Int(minimum=0, maximum=max_skip),
    }


def by_name(sort_fields: Sequence[str]) -> dict[str, Schema]:
    """paging, plus DeviceHive's exact ``name`` and SQL LIKE ``namePattern`` filters."""
    return {
        "name": Str(min_length=1, max_length=200, description="exact name, case-insensitive"),
        "namePattern": like_pattern(
            200, "SQL LIKE pattern (% and _; \\ escapes), case-insensitive"
        ),
        **paging(sort_fields),
    }


def filters(request: Mapping[str, Any], default_sort: str = "id") -> dict[str, Any]:
    """Validated listing parameters as keyword arguments of the stores' ``page``."""
    return {
        "name": request.get("name"),
        "name_pattern": request.get("namePattern"),
        "sort": request.get("sortField") or default_sort,
        "descending": request.get("sortOrder") == "DESC",
        "limit": request.get("take", MAX_TAKE),
        "offset": request.get("skip", 0),
    }
