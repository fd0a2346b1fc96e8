"""The house's layers, asserted by reading every module's imports (``ast``, nothing imported).

Floors, top to bottom; a module may import from its own room (package or module), from any
room on a lower floor, and from another room on its own floor only where the floor says so.
Every import counts: module-level, inside functions, and under ``if TYPE_CHECKING:``. The cycle
check leaves out the ``TYPE_CHECKING`` ones (they never run) and nothing else.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gateway"


@dataclass(frozen=True)
class Floor:
    name: str
    rooms: frozenset[str]
    lateral: bool = False
    """Whether rooms on this floor may import each other."""


FLOORS = [
    Floor("faces", frozenset({"gateway.cli", "gateway.__main__", "gateway.admin"}), lateral=True),
    Floor("wiring", frozenset({"gateway.app", "gateway.dhwiring"}), lateral=True),
    Floor(
        "edges",
        frozenset({"gateway.api", "gateway.realtime", "gateway.console", "gateway.client"}),
    ),
    Floor("use cases", frozenset({"gateway.auth", "gateway.devices"})),
    Floor("store and bus", frozenset({"gateway.store", "gateway.bus"})),
    Floor(
        "foundation",
        frozenset(
            {
                "gateway",
                "gateway.types",
                "gateway.config",
                "gateway.errors",
                "gateway.clock",
                "gateway.limits",
                "gateway.schema",
                "gateway.listing",
                "gateway.http",
                "gateway.metrics",
                "gateway.logs",
                "gateway.tls",
                "gateway.supervise",
            }
        ),
        lateral=True,
    ),
]
"""The house, top to bottom (console, client, metrics and supervise as ARCHITECTURE.md plans
them: a new room must be given a floor here)."""

NEVER = [
    ("gateway.realtime", "gateway.api"),
    ("gateway.api", "gateway.realtime"),
    ("gateway.store", "gateway.auth"),
    ("gateway.store", "gateway.devices"),
    ("gateway.bus", "gateway.store"),
]
"""The arrows people are most tempted to add back, named one by one (the floors forbid them
already; these say so in the test report)."""

MAX_LINES = 400


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    type_only: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def _walk(module: str, nodes: list[ast.stmt], type_only: bool) -> Iterator[Import]:
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(module, node.body, True)
            yield from _walk(module, node.orelse, type_only)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, type_only)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            for alias in node.names:
                # ``from gateway.realtime import actions`` imports the module when there is one.
                candidate = f"{base}.{alias.name}"
                yield Import(candidate if candidate in MODULES else base, node.lineno, type_only)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _walk(module, [child], type_only)


def imports_of(module: str) -> list[Import]:
    tree = ast.parse(MODULES[module].read_text())
    found = _walk(module, tree.body, False)
    return [imp for imp in found if imp.target == "gateway" or imp.target.startswith("gateway.")]


def room_of(module: str) -> str:
    rooms = [room for floor in FLOORS for room in floor.rooms]
    matches = [room for room in rooms if module == room or module.startswith(room + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no room: give it a floor in tests/test_layers.py")
    return max(matches, key=len)


def floor_of(room: str) -> int:
    return next(i for i, floor in enumerate(FLOORS) if room in floor.rooms)


def test_every_module_has_a_room() -> None:
    for module in MODULES:
        room_of(module)


@pytest.mark.parametrize(("importer", "imported"), NEVER)
def test_arrows_that_must_never_exist(importer: str, imported: str) -> None:
    offending = [
        f"{module}:{imp.line} imports {imp.target}"
        for module in MODULES
        if room_of(module) == importer
        for imp in imports_of(module)
        if room_of(imp.target) == imported
    ]
    assert offending == []


def test_every_import_goes_down_a_floor_or_stays_in_its_room() -> None:
    offending = []
    for module in MODULES:
        room = room_of(module)
        floor = floor_of(room)
        for imp in imports_of(module):
            target_room = room_of(imp.target)
            target_floor = floor_of(target_room)
            allowed = (
                target_room == room
                or target_floor > floor
                or (target_floor == floor and FLOORS[floor].lateral)
            )
            if not allowed:
                offending.append(
                    f"{module}:{imp.line} ({FLOORS[floor].name}) imports {imp.target}"
                    f" ({FLOORS[target_floor].name})"
                )
    assert offending == []


def test_no_import_cycle_between_modules() -> None:
    graph = {
        module: sorted(
            {imp.target for imp in imports_of(module) if not imp.type_only}
            & set(MODULES) - {module}
        )
        for module in MODULES
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in graph[module]:
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module)
    assert cycles == []


def test_no_module_is_over_the_size_limit() -> None:
    too_long = {
        module: lines
        for module, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert too_long == {}


def test_every_module_says_its_one_job_in_its_first_docstring_line() -> None:
    missing = []
    for module, path in MODULES.items():
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        first = docstring.splitlines()[0] if docstring else ""
        if not first.strip():
            missing.append(f"{module}: {first!r}")
    assert missing == []
