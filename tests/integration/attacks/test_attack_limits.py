"""Issue 13, item 4: the rate limit has no bypass, address limits count address groups, and
idle clients are pinged. Every server here binds 127.0.0.1; every loop is bounded."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from helpers import JsonClient, LineClient, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def clients() -> Iterator[list[LineClient]]:
    opened: list[LineClient] = []
    yield opened
    for client in opened:
        client.close()


def _json(opened: list[LineClient], port: int, nick: str) -> JsonClient:
    client = JsonClient(port, nick)
    opened.append(client)
    return client


@pytest.mark.parametrize("filler", [b"\n", b" \n", b"\0\n", b"\r\n\r\n"])
def test_blank_lines_wait_like_any_line(server_factory, clients, filler):
    # 100 blank lines at 50 per second (burst 5) take about 2 s before the next line is
    # handled; before the fix blank lines were free and the reply came at once.
    server = server_factory(rate_limit=50, rate_burst=5)
    client = _json(clients, server.port, "blanker")
    time.sleep(0.15)  # let the bucket refill after the hello and join (bounded, not a sync)
    start = time.monotonic()
    client.send_raw(filler * 100 if filler != b"\r\n\r\n" else filler * 50)
    client.send({"type": "msg", "room": "lobby", "text": "after", "ref": "r1"})
    client.expect("message", timeout=10, text="after")
    assert time.monotonic() - start >= 1.5


def test_over_long_lines_are_answered_at_the_rate(server_factory, clients):
    server = server_factory(rate_limit=20, rate_burst=5)
    client = _json(clients, server.port, "longer")
    client.send_raw((b"x" * 9000 + b"\n") * 60)
    deadline = time.monotonic() + 1.0
    errors = 0
    while time.monotonic() < deadline:
        try:
            line = client.read_line(max(0.01, deadline - time.monotonic()))
        except AssertionError:  # nothing more within the second
            break
        if line is not None and json.loads(line).get("code") == "frame_too_long":
            errors += 1
    # burst 5 + 20 per second for one second, with room for timing: far below 60
    assert 0 < errors <= 35, errors


def test_blank_line_flooder_is_disconnected(server_factory, clients):
    server = server_factory(rate_limit=50, rate_burst=5, flood_seconds=1.0)
    client = _json(clients, server.port, "flood")
    client.sock.settimeout(0.5)
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:  # bounded: until the server stops reading
            client.sock.send(b"\n" * 4096)
    except OSError:
        pass  # the send buffer filled up (timeout) or the server closed the connection
    frame = client.expect("error", timeout=10, code="flooding")
    assert "flooding" in frame["message"]
    wait_for(lambda: "flood" not in server.hub.nicks, message="flooder gone")


def _raw_from(clients: list[LineClient], port: int, source: str) -> LineClient:
    client = LineClient.__new__(LineClient)
    client.sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                           source_address=(source, 0))
    client.buffer, client.lines = b"", []
    clients.append(client)
    return client


def _read_to_eof(client: LineClient) -> list[str]:
    return [line for line in client.read_until_eof() if line]


def test_connections_that_never_register_are_capped_across_addresses(server_factory, clients):
    # Before: 128 addresses x 32 connections could hold every slot forever (until the
    # handshake deadline, then again). Now at most max_unregistered wait at once.
    server = server_factory(max_unregistered=4, max_per_address=32, handshake_timeout=30)
    silent = [_raw_from(clients, server.port, f"127.0.0.{10 + i}") for i in range(4)]
    wait_for(lambda: server.door.unregistered == 4, message="four waiting")
    refused = _raw_from(clients, server.port, "127.0.0.20")
    (line,) = _read_to_eof(refused)
    assert line.startswith("!!! server busy: too many connections still registering (4")
    # registering frees a slot; a registered client never counts
    silent[0].send_raw(b'{"type":"hello","version":1,"nick":"late"}\n')
    wait_for(lambda: "late" in server.hub.nicks, message="registered")
    wait_for(lambda: server.door.unregistered == 3, message="slot freed")
    welcome = JsonClient(server.port, "next")
    clients.append(welcome)
    silent[1].close()
    wait_for(lambda: server.door.unregistered == 2, message="closed one forgotten")


def test_password_guesses_from_many_addresses_share_one_budget(server_factory, clients):
    # Before: every address had its own 5 guesses a minute, so 3,000 addresses made 872
    # guesses per second. Now the whole server checks at most `global_max` a minute.
    server = server_factory(password="right horse")
    server.hub.gate.global_max = 3
    answers = []
    for i in range(4):
        client = _raw_from(clients, server.port, f"127.0.1.{i + 1}")
        client.send_raw(json.dumps({"type": "hello", "version": 1, "nick": f"g{i}",
                                    "password": "guess"}).encode() + b"\n")
        frames = [json.loads(line) for line in _read_until_error(client)]
        answers.append(frames[-1]["message"])
    assert answers[:3] == ["wrong password"] * 3
    assert "too many password attempts on this server" in answers[3]
    # the right password is not checked either while the budget is spent
    late = _raw_from(clients, server.port, "127.0.1.9")
    late.send_raw(json.dumps({"type": "hello", "version": 1, "nick": "owner",
                              "password": "right horse"}).encode() + b"\n")
    frames = [json.loads(line) for line in _read_until_error(late)]
    assert frames[-1]["type"] == "error" and "owner" not in server.hub.nicks


def _read_until_error(client: LineClient) -> list[str]:
    lines = []
    while True:
        line = client.read_line(10)
        assert line is not None, f"closed without an error: {lines}"
        if line.startswith("{"):
            lines.append(line)
            if json.loads(line)["type"] == "error":
                return lines


def test_one_ipv6_64_shares_the_per_address_cap(server_factory, clients):
    # 40 addresses of one /64 used to get 40 quotas. The door is handed accepted sockets
    # with IPv6 peer addresses (loopback has only ::1): a 127.0.0.1 pair stands in for each.
    server = server_factory(max_per_address=3, max_unregistered=0)
    door = server.door
    outcomes = []
    for i in range(5):
        ours, theirs = _tcp_pair()
        clients.append(_wrap(ours))
        door._admit(theirs, (f"2001:db8:0:7::{i + 1:x}", 50000 + i))
        outcomes.append(ours.recv(200))  # a greeting (text mode, after the sniff) or "!!!"
    assert all(o.startswith(b"chatkit server test - welcome!") for o in outcomes[:3])
    assert outcomes[3:] == [b"!!! too many connections from 2001:db8:0:7::/64\r\n"] * 2
    assert door.per_address == {"2001:db8:0:7::/64": 3}
    ours, theirs = _tcp_pair()  # another /64 is welcome
    clients.append(_wrap(ours))
    door._admit(theirs, ("2001:db8:0:8::1", 50010))
    wait_for(lambda: door.per_address.get("2001:db8:0:8::/64") == 1, message="admitted")


def _wrap(sock: socket.socket) -> LineClient:
    client = LineClient.__new__(LineClient)
    client.sock, client.buffer, client.lines = sock, b"", []
    return client


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname(), timeout=5)
        theirs, _ = listener.accept()
    return ours, theirs
