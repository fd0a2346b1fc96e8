"""The README documents what the code does: its tables are checked against the sources."""

from __future__ import annotations

from pathlib import Path

from gateway.config import describe
from gateway.config.describe import table_in
from gateway.types import CloseCode

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_shows_the_configuration_table_as_the_code_defines_it() -> None:
    """Exactly the generated table, no row more or less: `make docs` rewrites it."""
    assert table_in(README) == describe()


def test_readme_lists_every_close_code() -> None:
    for code in CloseCode:
        assert f"| {code.value} | {code.name.lower().replace('_', ' ')} |" in README


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README
    assert "make test" in README
