"""A small schema language: one declaration both validates input and documents it (OpenAPI).

Validation is strict: unknown fields, missing fields and wrong types are all 422s that name the
offending field, so a client learns exactly what to fix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import Unprocessable

NO_NUL = "^[^\\u0000]*$"


def _at(path: str) -> str:
    return path or "body"


_NUL = "\x00"


def _contains_nul(value: Any) -> bool:
    """Whether a string or key anywhere in a JSON value holds NUL, which PostgreSQL's text and
    jsonb reject (a 500 if it got that far). Iterative: JSON may nest deeper than the stack."""
    try:
        if b"\\u0000" not in orjson.dumps(value):  # fast path: orjson escapes NUL as \u0000
            return False
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits: walk it instead
        pass
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _NUL in item:
                return True
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            if any(_NUL in key for key in item):
                return True
            pending.extend(item.values())
    return False


class Schema:
    description: str | None = None
    nullable: bool = False

    def check(self, value: Any, path: str) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise Unprocessable(f"{_at(path)}: must not be null")
        return self._check(value, path)

    def _check(self, value: Any, path: str) -> Any:
        return value

    def parse_text(self, text: str, path: str) -> Any:
        """Values from a path or query string arrive as text."""
        return self.check(text, path)

    def json_schema(self) -> dict[str, Any]:
        schema = self._json_schema()
        if self.nullable:
            kind = schema.get("type")
            if isinstance(kind, str):
                schema["type"] = [kind, "null"]
            elif kind is None and "oneOf" in schema:
                schema["oneOf"] = [*schema["oneOf"], {"type": "null"}]
        if self.description:
            schema["description"] = self.description
        return schema

    def _json_schema(self) -> dict[str, Any]:
        return {}


@dataclass
class Str(Schema):
    min_length: int = 0
    max_length: int | None = 1024
    """None: unbounded (only for what the server writes, such as error messages)."""
    pattern: str | None = None
    enum: Sequence[str] | None = None
    format: str | None = None
    nullable: bool = False
    description: str | None = None
    visible: bool = False
    """Refuse control, invisible (format: zero-width, bidi), private-use, unassigned and line
    separator characters, which a pattern cannot name outside the BMP: for identifiers a person
    reads, where 'admin\u200b' must not pass for 'admin'."""
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.pattern:
            self._regex = re.compile(self.pattern)

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise Unprocessable(f"{_at(path)}: must be a string")
        if _NUL in value:
            raise Unprocessable(f"{_at(path)}: must not contain NUL characters")
        if self.enum is not None and value not in self.enum:
            raise Unprocessable(f"{_at(path)}: must be one of {', '.join(self.enum)}")
        if len(value) < self.min_length:
            raise Unprocessable(
                f"{_at(path)}: must not be empty"
                if self.min_length == 1
                else f"{_at(path)}: must be at least {self.min_length} characters"
            )
        if self.max_length is not None and len(value) > self.max_length:
            raise Unprocessable(f"{_at(path)}: must be at most {self.max_length} characters")
        if self._regex is not None and not self._regex.fullmatch(value):
            raise Unprocessable(f"{_at(path)}: must match {self.pattern}")
        if self.visible and (hidden := _invisible(value)) is not None:
            raise Unprocessable(
                f"{_at(path)}: must not contain U+{ord(hidden):04X} (a control or invisible "
                "character)"
            )
        return value

    def _json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.pattern:
            # Validation matches the whole string (a JSON Schema pattern may match anywhere)
            # and refuses NUL whatever the pattern says.
            schema["pattern"] = f"^(?=[^\\u0000]*$)(?:{self.pattern})$"
        elif self.enum is None and self.format is None:
            schema["pattern"] = NO_NUL  # PostgreSQL cannot store NUL; validation refuses it
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.format:
            schema["format"] = self.format
        return schema


_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _invisible(value: str) -> str | None:
    """The first character of ``value`` that a reader cannot see, if any."""
    if value.isascii():
        return next((c for c in value if not " " <= c <= "~"), None)
    return next((c for c in value if unicodedata.category(c) in _INVISIBLE), None)


# PostgreSQL's bigint: a larger number would fail in the driver (a 500) instead of validation.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass
class Int(Schema):
    minimum: int | None = None
    maximum: int | None = None
    nullable: bool = False
    description: str | None = None

    def _check(self, value: Any, path: str) -> Any:
        if type(value) is float and value.is_integer():
            value = int(value)  # JSON has one number type: 13.0 is the integer 13
        if isinstance(value, bool) or not isinstance(value, int):
            raise Unprocessable(f"{_at(path)}: must be an integer")
        if self.minimum is not None and value < self.minimum:
            raise Unprocessable(f"{_at(path)}: must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise Unprocessable(f"{_at(path)}: must be at most {self.maximum}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise Unprocessable(f"{_at(path)}: must be a 64-bit integer")
        return value

    def parse_text(self, text: str, path: str) -> Any:
        if not re.fullmatch(r"-?\d{1,20}", text):
            raise Unprocessable(f"{_at(path)}: must be an integer")
        return self.check(int(text), path)

    def _json_schema(self) -> dict[str, Any]:
        return {
            "type": "integer",
            "format": "int64",
            "minimum": INT64_MIN if self.minimum is None else self.minimum,
            "maximum": INT64_MAX if self.maximum is None else self.maximum,
        }


@dataclass
class Bool(Schema):
    nullable: bool = False
    description: str | None = None

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            raise Unprocessable(f"{_at(path)}: must be true or false")
        return value

    def parse_text(self, text: str, path: str) -> Any:
        if text not in ("true", "false"):
            raise Unprocessable(f"{_at(path)}: must be true or false")
        return text == "true"

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass
class AnyJson(Schema):
    """Any JSON value (free-form device data, command parameters)."""

    nullable: bool = True
    description: str | None = None

    def _check(self, value: Any, path: str) -> Any:
        if _contains_nul(value):
            raise Unprocessable(f"{_at(path)}: strings must not contain NUL characters")
        return value

    def _json_schema(self) -> dict[str, Any]:
        return {"$ref": "#/components/schemas/JsonValue"}


JSON_VALUE: dict[str, Any] = {
    "description": "Any JSON value without NUL characters in its strings and keys",
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        },
    ],
}
"""The OpenAPI component AnyJson refers to."""


@dataclass
class Array(Schema):
    items: Schema
    min_items: int = 0
    max_items: int = 1000
    nullable: bool = False
    description: str | None = None

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise Unprocessable(f"{_at(path)}: must be an array")
        if len(value) < self.min_items:
            raise Unprocessable(f"{_at(path)}: must have at least {self.min_items} items")
        if len(value) > self.max_items:
            raise Unprocessable(f"{_at(path)}: must have at most {self.max_items} items")
        return [self.items.check(item, f"{path}[{i}]") for i, item in enumerate(value)]

    def _json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.items.json_schema()}
        if self.min_items:
            schema["minItems"] = self.min_items
        schema["maxItems"] = self.max_items
        return schema


@dataclass
class AllOr(Schema):
    """``["*"]`` (all that the owner may see) or a list that ``items`` validates."""

    items: Array
    nullable: bool = False
    description: str | None = None

    def _check(self, value: Any, path: str) -> Any:
        if value == [WILDCARD]:
            return value
        if isinstance(value, list) and WILDCARD in value:
            raise Unprocessable(f'{_at(path)}: "*" stands alone, meaning all')
        return self.items.check(value, path)

    def _json_schema(self) -> dict[str, Any]:
        everything = {"type": "array", "items": {"const": WILDCARD}, "minItems": 1, "maxItems": 1}
        return {"oneOf": [everything, self.items.json_schema()]}


WILDCARD = "*"


@dataclass
class OneOf(Schema):
    options: Sequence[Schema]
    nullable: bool = False
    description: str | None = None

    def _check(self, value: Any, path: str) -> Any:
        errors = []
        for option in self.options:
            try:
                return option.check(value, path)
            except Unprocessable as exc:
                errors.append(exc.message.removeprefix(f"{_at(path)}: "))
        raise Unprocessable(f"{_at(path)}: " + " or ".join(errors))

    def _json_schema(self) -> dict[str, Any]:
        return {"oneOf": [option.json_schema() for option in self.options]}


@dataclass
class Obj(Schema):
    """A JSON object; ``required`` names the fields that must be present."""

    properties: Mapping[str, Schema]
    required: Sequence[str] = ()
    additional: bool = False
    nullable: bool = False
    description: str | None = None
    name: str | None = None
    exactly_one: Sequence[str] = ()
    """Fields of which exactly one must be present (OpenAPI: a ``oneOf`` of ``required``)."""

    def _check(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise Unprocessable(f"{_at(path)}: must be a JSON object")
        if not self.additional:
            unknown = sorted(set(value) - set(self.properties))
            if unknown:
                raise Unprocessable(f"{_at(path)}: unknown field: {', '.join(unknown)}")
        missing = [name for name in self.required if name not in value]
        if missing:
            raise Unprocessable(f"{_at(path)}: missing field: {', '.join(missing)}")
        checked = dict(value)
        for name, schema in self.properties.items():
            if name in value:
                checked[name] = schema.check(value[name], f"{path}.{name}" if path else name)
        if self.exactly_one and sum(name in value for name in self.exactly_one) != 1:
            *first, last = self.exactly_one
            prefix = f"{path}: " if path else ""
            raise Unprocessable(f"{prefix}give exactly one of {', '.join(first)} or {last}")
        return checked

    def _json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: s.json_schema() for name, s in self.properties.items()},
            "additionalProperties": self.additional,
        }
        if self.required:
            schema["required"] = list(self.required)
        if self.exactly_one:
            schema["oneOf"] = [{"required": [name]} for name in self.exactly_one]
        return schema


DEVICE_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
DEVICE_ID = Str(min_length=1, max_length=64, pattern=DEVICE_ID_PATTERN)
"""A device id: chosen by the client, used in URLs and channel names."""

DESCRIPTION = Str(max_length=2000, nullable=True)
"""A free-text description (networks, device types, plugins): one bound for what a request may
set and what a response may hold, so that a response never breaks its own documented schema."""
