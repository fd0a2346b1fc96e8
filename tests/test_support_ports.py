"""The ports the suite gives its servers never come from the range outbound connections use, so
a server the suite starts cannot lose its port to a neighbour's connection to PostgreSQL."""

from __future__ import annotations

import socket

from tests.support.servers import PORTS_FROM, _bindable, _ephemeral_low, free_port


def test_ports_are_below_the_ephemeral_range_and_never_handed_out_twice() -> None:
    low = _ephemeral_low()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    if low > PORTS_FROM + 1000:
        assert all(PORTS_FROM <= port < low for port in ports)


def test_a_port_someone_listens_on_is_not_bindable() -> None:
    with socket.socket() as listener:
        port = free_port()
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert not _bindable(port)
    assert _bindable(port)
