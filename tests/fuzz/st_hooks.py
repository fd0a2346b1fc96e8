"""Schemathesis hooks for the REST fuzz run: every request carries a freshly signed admin token.

The fuzzer logs out, revokes users, changes passwords and deletes accounts, the admin's among
them: a token obtained once would soon be refused and the run would test nothing but 401s. So
each request gets a new token (new jti, new login session id) signed with the gateway's secret,
which the harness passes in the environment.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt
import schemathesis

ALL_ACTIONS = list(range(2, 19))


@schemathesis.auth(refresh_interval=None)
class FreshAdminToken:
    def get(self, case: Any, context: Any) -> str:
        now = time.time()
        return jwt.encode(
            {
                "iss": os.environ.get("FUZZ_JWT_ISSUER", "gateway"),
                "sub": os.environ["FUZZ_ADMIN_ID"],
                "jti": str(uuid.uuid4()),
                "iat": now,
                "exp": int(now + 600),
                "typ": "access",
                "sid": str(uuid.uuid4()),
                "role": "admin",
                "actions": ALL_ACTIONS,
                "networkIds": ["*"],
                "deviceIds": ["*"],
            },
            os.environ["FUZZ_JWT_SECRET"],
            algorithm="HS256",
            headers={"kid": os.environ["FUZZ_JWT_KID"]},
        )

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
        if case.operation.path.endswith("/poll"):
            # A long poll holds the request up to waitTimeout (60 s at most) when nothing is
            # new: bounded here so that the run tests the request, not its 10 s read timeout.
            query = dict(case.query or {})
            wait = query.get("waitTimeout")
            if wait is None or (isinstance(wait, int) and not isinstance(wait, bool) and wait > 1):
                query["waitTimeout"] = 1
                case.query = query


PARSER_LINE_LIMIT = 8190
"""aiohttp's HTTP parser refuses a longer request line with its own text/plain 400 before any
handler runs: the one documented exception to the JSON errors (README, "REST API", and
tests/api/test_hostile_http.py), which no OpenAPI document can express."""


@schemathesis.hook
def filter_query(ctx: Any, query: dict[str, Any] | None) -> bool:
    """Queries that keep the request line within the parser's limit (1 KiB left for the
    method, the path and the protocol)."""
    return query is None or len(urlencode(query, doseq=True)) <= PARSER_LINE_LIMIT - 1024
