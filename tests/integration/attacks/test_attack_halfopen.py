"""Issue 13, items 4 (idle pings) and 9 (half-open peers): a client that vanished, even with
messages in flight to it, is dropped within the ping deadline (clients that answer pings) or
TCP_USER_TIMEOUT (everyone else), not after ~15 minutes of retransmissions. Servers bind
127.0.0.1; the relay and every loop are bounded."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from chatkit.client.connection import Connection
from chatkit.net.sockets import tune_tcp

from helpers import JsonClient, Relay, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def relay_of() -> Iterator:
    relays: list[Relay] = []

    def make(port: int) -> Relay:
        relay = Relay(port)
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        relay.close()


def _hello(client: JsonClient, nick: str, pings: bool) -> None:
    client.send({"type": "hello", "version": 1, "nick": nick, "room": "lobby",
                 **({"pings": True} if pings else {})})
    client.expect("welcome")
    client.expect("history_end")


def test_vanished_client_with_messages_in_flight_is_dropped(server_factory, relay_of):
    # Before: the relay's side stays open and silent, its kernel acknowledges what the server
    # sends, and nothing removed the member (keepalive does not run with data outstanding).
    server = server_factory(ping_idle=0.5, ping_deadline=0.5)
    relay = relay_of(server.port)
    victim = JsonClient(relay.port)
    bob = JsonClient(server.port, "bob")
    try:
        _hello(victim, "victim", pings=True)
        relay.cut()
        start = time.monotonic()
        deadline = start + 10
        while "victim" in server.hub.nicks and time.monotonic() < deadline:
            bob.send({"type": "msg", "room": "lobby", "text": "x" * 500})  # data in flight
            time.sleep(0.05)
        assert "victim" not in server.hub.nicks
        assert time.monotonic() - start < 5
        quit_frame = bob.expect("quit", nick="victim")
        assert "no answer to a ping" in quit_frame["reason"]
    finally:
        victim.close()
        bob.close()


def test_chatkit_clients_answer_pings_and_stay(server_factory):
    server = server_factory(ping_idle=0.2, ping_deadline=0.5)
    conn = Connection.open("127.0.0.1", server.port, "idler", "lobby", timeout=5, tls=False)
    pongs: list[object] = []
    send = conn.send

    def counting_send(frame: dict) -> None:
        if frame["type"] == "pong":
            pongs.append(frame["id"])
        send(frame)

    conn.send = counting_send  # type: ignore[method-assign]
    seen: list[dict] = []
    reader = threading.Thread(target=lambda: seen.extend(conn.frames()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(pongs) >= 5, message="five pings answered")
        assert pongs[:5] == ["s1", "s2", "s3", "s4", "s5"]
        assert "idler" in server.hub.nicks
    finally:
        conn.close()
        reader.join(5)
    assert not [f for f in seen if f["type"] == "ping"], "a ping reached the application"


def test_clients_that_did_not_ask_are_never_pinged(server_factory):
    # nc users and programs that never said `pings` get nothing they did not ask for:
    # TCP keepalive and TCP_USER_TIMEOUT watch them instead.
    server = server_factory(ping_idle=0.2, ping_deadline=0.3)
    quiet = JsonClient(server.port)
    try:
        _hello(quiet, "quiet", pings=False)
        with pytest.raises(AssertionError, match="no line within"):
            quiet.read_line(1.0)
        assert "quiet" in server.hub.nicks
    finally:
        quiet.close()


def test_sockets_give_up_on_unacknowledged_data():
    # TCP_USER_TIMEOUT: without it Linux retransmits for ~15 minutes before giving up.
    if not hasattr(socket, "TCP_USER_TIMEOUT"):
        pytest.skip("TCP_USER_TIMEOUT is Linux-only")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname(), timeout=5) as sock:
            tune_tcp(sock)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 60_000
            tune_tcp(sock, 2.5)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2_500
