"""aiohttp's server log without the bytes of a malformed request.

aiohttp refuses a request it cannot parse (a NUL byte or a bare CR in a header, a header line
over 8 KiB) with a 400 before any handler runs, and logs the parser's exception with a traceback:
its message quotes the offending bytes, which may be an Authorization header. This log keeps one
line per refused request, naming the error class and the peer, and nothing the client sent.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("gateway.http")


class ServerLog:
    """Stands in for the ``logger`` aiohttp's request handler writes to."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    def debug(self, *args: Any, **kwargs: Any) -> None:
        if not isinstance(kwargs.get("exc_info"), HttpProcessingError):
            self.logger.debug(*args, **kwargs)

    def exception(self, message: str, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            peer = args[0] if args else None
            self.logger.info(
                "refused a malformed HTTP request from %s: %s (%s)",
                peer,
                type(exc_info).__name__,
                exc_info.code,
            )
            return
        self.logger.error(message, *args, exc_info=exc_info, **kwargs)
