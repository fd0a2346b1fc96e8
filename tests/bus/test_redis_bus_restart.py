"""After Redis restarts, the first message published once the bus reports healthy again is
delivered: no idle publishing connection to the Redis that went away is reused."""

from __future__ import annotations

import pytest

from gateway.bus.redis import RedisBus
from tests.conftest import wait_for
from tests.support.servers import RedisProcess


@pytest.mark.timeout(60)
async def test_the_first_publish_after_a_restart_reaches_the_other_instance(
    redis_prefix: str,
) -> None:
    server = RedisProcess()
    server.start()
    a = RedisBus("a", server.url, prefix=redis_prefix)
    b = RedisBus("b", server.url, prefix=redis_prefix)
    await a.start()
    await b.start()
    try:
        seen: list[tuple[str, bytes]] = []
        b.set_handler(lambda channel, payload: seen.append((channel, payload)))
        b.subscribe("dev:1")
        await b.settled(["dev:1"])
        a.publish("dev:1", b"before")
        await wait_for(lambda: seen == [("dev:1", b"before")])

        # Nothing is published while Redis is down: A's publishing connection stays idle.
        server.stop()
        await wait_for(lambda: not a.healthy and not b.healthy, timeout=10)
        server.start()
        await wait_for(lambda: a.healthy and b.healthy, timeout=20)

        a.publish("dev:1", b"after")
        await wait_for(lambda: len(seen) == 2, timeout=5)
        assert seen[1] == ("dev:1", b"after")
        assert await a.publish_counted("dev:1", b"counted") == 1
        await wait_for(lambda: len(seen) == 3, timeout=5)
    finally:
        await a.close()
        await b.close()
        server.stop()
