"""Writes the option table into a Markdown file between its markers: ``python -m gateway.config
README.md`` (what ``make docs`` runs after an option is added or changed)."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.config.describe import with_table


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        updated = with_table(text)
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            print(f"{path}: option table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["README.md"]))
