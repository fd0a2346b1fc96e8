"""server/info: the API version, the server's clock and where its REST and WebSocket APIs are."""

from __future__ import annotations

import time
from typing import Any

from gateway import API_VERSION
from gateway.clock import iso
from gateway.realtime.dispatcher import Context, action
from gateway.realtime.session import Session


@action("server/info", {}, needs_token=False)
async def server_info(ctx: Context, session: Session, request: dict[str, Any]) -> dict[str, Any]:
    settings = ctx.settings
    scheme = "https" if settings.tls_cert_file else "http"
    base = settings.public_url or f"{scheme}://{settings.host}:{settings.port}"
    return {
        "info": {
            "apiVersion": API_VERSION,
            "serverTimestamp": iso(time.time()),
            "restServerUrl": base.rstrip("/") + "/v1",
            "webSocketServerUrl": base.replace("http", "ws", 1).rstrip("/") + "/v1/ws",
        }
    }
