"""Log set-up: plain text or one JSON object per line, with the request, session and instance a
record belongs to, and never a token, password or secret in the output.

aiohttp runs each request (and each WebSocket) in its own task, so whatever that task logs can
carry its ids without their being passed along: a request's id travels in a context variable,
a WebSocket session's id in the name of its tasks (``session-<id>``), which costs an idle socket
nothing where a context entry would cost it about 120 bytes.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sys
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import orjson

LOG_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
SESSION_TASK = "session-"


def session_task(session_id: int) -> str:
    """The name of a session's tasks (``asyncio.all_tasks()`` shows whose they are)."""
    return f"{SESSION_TASK}{session_id}"


def name_task(session_id: int) -> None:
    """Name the running task after the session it now serves."""
    task = asyncio.current_task()
    if task is not None:
        task.set_name(session_task(session_id))


def _session_id() -> int | None:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop in this thread
        return None
    name = "" if task is None else task.get_name()
    if name.startswith(SESSION_TASK) and name[len(SESSION_TASK) :].isdigit():
        return int(name[len(SESSION_TASK) :])
    return None


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
"""A compact JWS (header, payload, signature): what access and refresh tokens look like."""

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_PASSWORD_FIELD = re.compile(r'(?i)("?(?:password|secret|token)"?\s*[:=]\s*"?)[^"\s,}]+')


class Scrubber:
    """Removes what must never reach a log: tokens, URL passwords, known secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _JWT.sub("[token]", text)
        text = _URL_PASSWORD.sub(r"\1***@", text)
        text = _PASSWORD_FIELD.sub(r"\1***", text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class _Context(logging.Filter):
    """Stamps each record with the ids of the request or session it was logged for."""

    def __init__(self, instance: str) -> None:
        super().__init__()
        self.instance = instance

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = LOG_REQUEST_ID.get()
        record.session_id = _session_id()
        record.instance = self.instance
        return True


class TextFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s%(where)s")
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        where = []
        request_id = getattr(record, "request_id", None)
        session_id = getattr(record, "session_id", None)
        if request_id:
            where.append(f"request={request_id}")
        if session_id:
            where.append(f"session={session_id}")
        record.where = f" [{' '.join(where)}]" if where else ""
        return self.scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": self.scrub(record.getMessage()),
            "instance": getattr(record, "instance", None),
        }
        for key in ("request_id", "session_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.scrub(self.formatException(record.exc_info))
        elif record.stack_info:
            entry["stack"] = self.scrub(self.formatStack(record.stack_info))
        return orjson.dumps(entry, default=str).decode()


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + (
        f".{int(timestamp % 1 * 1000):03d}Z"
    )


def url_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def configure(
    *, level: str, fmt: str, instance: str, secrets: Iterable[str | None] = ()
) -> logging.Handler:
    """One handler on the root logger, writing to stderr in the chosen format."""
    scrub = Scrubber(s for s in secrets if s)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Context(instance))
    handler.setFormatter(JsonFormatter(scrub) if fmt == "json" else TextFormatter(scrub))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return handler
