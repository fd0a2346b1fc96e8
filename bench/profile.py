"""Where the time goes: py-spy samples of a server process, summarized for the README.

py-spy attaches from outside (``--nonblocking``: the target is never paused), so the server runs
exactly as in the measured runs; the profile is taken in a separate run all the same, because the
sampler itself takes CPU on a two-core machine.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    """The py-spy binary next to this interpreter, else on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path, rate: int = 200) -> dict[str, Any]:
    """Sample ``pid`` for ``seconds`` and return the summary (or why there is none)."""
    binary = py_spy()
    if binary is None:
        return {"error": "py-spy not installed (pip install -e '.[bench]')"}
    process = await asyncio.create_subprocess_exec(
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), seconds + 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        return {"error": "py-spy did not finish"}
    if process.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {stderr.decode(errors='replace')[-300:]}"}
    summary = summarize(out.read_text())
    summary["raw"] = out.name
    summary["seconds"] = seconds
    summary["rate"] = rate
    return summary


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text.strip())
    if not match:
        return text.strip(), ""
    return match.group("func"), match.group("file")


def _short(func: str, file: str) -> str:
    """``function (package/module.py)`` with site-packages and repo prefixes cut."""
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{func} ({file})" if file else func


def category(file: str) -> str:
    """The package a frame belongs to: ``gateway.realtime``, ``aiohttp``, ``asyncpg``, ...

    py-spy names files relative to their sys.path entry (``aiohttp/web_ws.py``); frames of the
    interpreter itself look like ``<frozen runpy>`` or ``<string>`` (generated dataclass code).
    """
    parts = file.replace("\\", "/").split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    top = parts[0]
    if top == "gateway" and len(parts) > 1:
        return "gateway." + parts[1].removesuffix(".py")
    if top.startswith("<"):
        return "interpreter"
    return top.removesuffix(".py")


def summarize(raw: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares per function, and self share per package."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(part) for part in stack.split(";")]
        frames = [(func, file) for func, file in frames if file]  # drop process/thread labels
        if not frames:
            continue
        total += count
        func, file = frames[-1]
        self_time[_short(func, file)] += count
        by_category[category(file)] += count
        for name in {_short(f, p) for f, p in frames}:
            inclusive[name] += count
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100.0 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self_percent": share(self_time),
        "inclusive_percent": [
            item
            for item in share(Counter(dict(inclusive.most_common(top + 25))))
            if not item[0].startswith(
                ("<module>", "_run_module_as_main", "_run_code", "main (", "serve (")
            )
        ][:top],
        "by_package_percent": share(by_category),
    }
