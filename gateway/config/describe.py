"""The options shown to operators: argparse flags, and the Markdown table kept in the README."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gateway.config.options import Option
from gateway.config.settings import OPTIONS

TABLE_START = "<!-- options: written by `make docs` from gateway/config/settings.py -->"
TABLE_END = "<!-- /options -->"


def add_arguments(parser: argparse.ArgumentParser, options: Sequence[Option] = OPTIONS) -> None:
    """One flag per option; the default shown is the built-in one (env vars override it).

    Flags keep the raw text (default None = not given) so that ``load_settings`` parses flags and
    variables alike and names the flag in its error.
    """
    for option in options:
        parser.add_argument(
            option.flag,
            dest=option.field,
            default=None,
            metavar=option.env,
            nargs="?" if option.switch else None,
            const="true" if option.switch else None,
            help=f"{option.help} [env {option.env}; default {option.shown_default}]",
        )


def overrides_from_args(
    args: argparse.Namespace, options: Sequence[Option] = OPTIONS
) -> dict[str, str | None]:
    return {option.field: getattr(args, option.field, None) for option in options}


def describe(options: Sequence[Option] = OPTIONS) -> str:
    """The configuration table as Markdown (kept in the README)."""
    rows = ["| variable | flag | default | meaning |", "| --- | --- | --- | --- |"]
    for option in options:
        rows.append(
            f"| `{option.env}` | `{option.flag}` | {option.shown_default} | {option.help} |"
        )
    return "\n".join(rows)


def table_in(document: str) -> str:
    """The text between the table markers of ``document``."""
    _, start, rest = document.partition(TABLE_START)
    current, end, _ = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"no {TABLE_START} ... {TABLE_END} markers")
    return current.strip("\n")


def with_table(document: str) -> str:
    """``document`` with the table between its markers rewritten from ``OPTIONS``."""
    table_in(document)
    before, _, rest = document.partition(TABLE_START)
    after = rest.partition(TABLE_END)[2]
    return f"{before}{TABLE_START}\n{describe()}\n{TABLE_END}{after}"
