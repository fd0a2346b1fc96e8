"""A revoked token closes its live sockets at once with 4003: logout, user disabled, deleted,
password changed, an administrator's revocation; other sessions stay open."""

from __future__ import annotations

from aiohttp import ClientResponse

from tests.conftest import bearer, login
from tests.realtime.helpers import ALICE_EMAIL, PASSWORD, World, connect, mint

CLOSE_WAIT = 1.0
""""At once": the close frame is on its way before the REST call has returned."""


async def _rest_status(
    world: World, method: str, path: str, token: str, body: object = None
) -> ClientResponse:
    """A REST call whose status and headers the test reads (the body is read, for json())."""
    response = await world.client.request(method, path, json=body, headers=bearer(token))
    await response.read()
    return response


async def test_logout_closes_that_login_sessions_sockets(world: World) -> None:
    first = await connect(world.client, world.alice)
    first_again = await connect(world.client)
    assert await first_again.ok("authenticate", token=world.alice) == {}
    await first.subscribe()
    other_login = (await login(world.client, ALICE_EMAIL, PASSWORD))["access_token"]
    other = await connect(world.client, other_login)

    response = await _rest_status(world, "POST", "/v1/auth/logout", world.alice)
    assert response.status == 204
    assert response.headers["X-Sessions-Closed"] == "2"
    assert await first.closed(CLOSE_WAIT) == (4003, "token revoked: logout")
    assert await first_again.closed(CLOSE_WAIT) == (4003, "token revoked: logout")
    assert (await other.ok("device/get", deviceId="d1"))["device"]["id"] == "d1"


async def test_user_disabled_closes_every_socket_of_the_user(world: World) -> None:
    sockets = [await connect(world.client, world.alice) for _ in range(2)]
    minted = await connect(world.client, await mint(world.client, world.alice, deviceIds=["d1"]))
    bob = await connect(world.client, world.bob)
    response = await _rest_status(
        world, "PATCH", f"/v1/users/{world.alice_id}", world.admin, {"status": "disabled"}
    )
    assert response.status == 200
    assert response.headers["X-Sessions-Closed"] == "3"
    for peer in [*sockets, minted]:
        assert await peer.closed(CLOSE_WAIT) == (4003, "token revoked: user disabled")
    assert await bob.is_open()
    # The disabled user cannot come back through the socket either.
    fresh = await connect(world.client)
    await fresh.fails("authenticate", 401, "Token revoked", token=world.alice)
    await fresh.fails(
        "token", 403, "User account is disabled", login=ALICE_EMAIL, password=PASSWORD
    )


async def test_user_deleted_closes_its_sockets(world: World) -> None:
    alice = await connect(world.client, world.alice)
    response = await _rest_status(world, "DELETE", f"/v1/users/{world.alice_id}", world.admin)
    assert response.status == 204
    assert await alice.closed(CLOSE_WAIT) == (4003, "token revoked: user deleted")


async def test_password_change_closes_its_sockets(world: World) -> None:
    alice = await connect(world.client, world.alice)
    response = await _rest_status(
        world, "PATCH", f"/v1/users/{world.alice_id}", world.admin, {"password": "another-pw1"}
    )
    assert response.status == 200
    assert await alice.closed(CLOSE_WAIT) == (4003, "token revoked: password changed")


async def test_admin_revocations_by_jti_and_by_device(world: World) -> None:
    by_jti = await connect(world.client, world.bob)
    info = await _rest_status(world, "GET", "/v1/auth/tokenInfo", world.bob)
    jti = (await info.json())["payload"]["jti"]
    device_token = await mint(world.client, world.alice, deviceIds=["d1"])
    by_device = await connect(world.client, device_token)
    unscoped = await connect(world.client, world.alice)

    response = await _rest_status(world, "POST", "/v1/auth/revoke", world.admin, {"jti": jti})
    assert response.status == 200
    assert (await response.json())["sessions_closed"] == 1
    assert await by_jti.closed(CLOSE_WAIT) == (4003, "token revoked: revoked by an administrator")

    response = await _rest_status(
        world, "POST", "/v1/auth/revoke", world.admin, {"device_id": "d1"}
    )
    assert response.status == 200
    assert (await response.json())["sessions_closed"] == 1
    assert await by_device.closed(CLOSE_WAIT) == (
        4003,
        "token revoked: revoked by an administrator",
    )
    assert await unscoped.is_open()


async def test_membership_change_is_not_a_revocation(world: World) -> None:
    alice = await connect(world.client, world.alice)
    response = await _rest_status(
        world, "DELETE", f"/v1/users/{world.alice_id}/networks/{world.n1}", world.admin
    )
    assert response.status == 204
    await alice.fails("device/get", 403, "Device d1 is outside the token's scope", deviceId="d1")
    assert await alice.is_open()


async def test_admin_terminates_one_session_4004(world: World) -> None:
    alice = await connect(world.client, world.alice)
    sub = await alice.subscribe(deviceId="d1")
    bob = await connect(world.client, world.bob)
    listed = await _rest_status(world, "GET", "/v1/sessions", world.admin)
    assert listed.status == 200
    sessions = (await listed.json())["sessions"]
    mine = [s for s in sessions if s["user_id"] == world.alice_id]
    assert len(mine) == 1
    assert mine[0]["networkIds"] == ["*"] and mine[0]["deviceIds"] == ["*"]
    assert mine[0]["subscriptions"] == [
        {
            "subscriptionId": sub,
            "type": "notification",
            "deviceId": "d1",
            "networkIds": None,
            "deviceTypeIds": None,
            "names": None,
        }
    ]
    path = f"/v1/sessions/{mine[0]['id']}"
    assert (await _rest_status(world, "DELETE", path, world.admin)).status == 204
    assert await alice.closed(CLOSE_WAIT) == (4004, "session terminated by an administrator")
    response = await _rest_status(world, "DELETE", path, world.admin)
    assert response.status == 404
    assert (await response.json())["message"] == "Session not found on this instance"
    assert await bob.is_open()
