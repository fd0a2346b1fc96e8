"""The option declaration: one ``Settings`` field says its default, help, parser and secrecy.

``option(...)`` is a dataclass field whose metadata carries the rest; ``options_of`` reads the
fields back as ``Option`` records, from which the loader, the flags and the table are derived.
The variable is ``GATEWAY_`` + the field name in capitals and the flag ``--`` + the field name in
kebab case, so a name is written once. Without ``parse=`` the parser follows the field's type:
``str``, ``Path``, ``int`` and ``bool`` (optionally ``| None``); any other type needs one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.config.parsers import integer, parse_bool

T = TypeVar("T")

_KEY = "gateway.config.option"

_PARSERS_BY_TYPE: dict[object, Callable[[str], Any]] = {
    str: str,
    Path: Path,
    int: integer,
    bool: parse_bool,
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Declared:
    help: str
    parse: Callable[[str], Any] | None
    secret: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Option:
    """One setting as the operator sees it."""

    field: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    secret: bool = False

    @property
    def env(self) -> str:
        return "GATEWAY_" + self.field.upper()

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def switch(self) -> bool:
        """A boolean: its flag may be given bare (``--metrics``) to mean true."""
        return self.parse is parse_bool

    @property
    def shown_default(self) -> str:
        return "unset" if self.default in (None, "", ()) else str(self.default)


def option(
    default: T,
    help: str,
    *,
    parse: Callable[[str], T] | None = None,
    secret: bool = False,
) -> T:
    """A ``Settings`` field. ``secret`` keeps the value out of ``repr`` (and so out of logs)."""
    declared = _Declared(help=help, parse=parse, secret=secret)
    return dataclasses.field(default=default, repr=not secret, metadata={_KEY: declared})


def options_of(cls: type[Any]) -> tuple[Option, ...]:
    """Every field of ``cls`` as an ``Option``, in declaration order."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        declared = field.metadata.get(_KEY)
        if not isinstance(declared, _Declared):
            raise TypeError(f"{cls.__name__}.{field.name} is not declared with option()")
        parse = declared.parse or _parser_for(hints[field.name])
        if parse is None:
            raise TypeError(f"{cls.__name__}.{field.name}: {hints[field.name]} needs parse=")
        found.append(Option(field.name, field.default, declared.help, parse, declared.secret))
    return tuple(found)


def _parser_for(hint: object) -> Callable[[str], Any] | None:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        present = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(present) != 1:
            return None
        hint = present[0]
    return _PARSERS_BY_TYPE.get(hint)
