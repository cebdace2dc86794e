"""Issue 13, item 4: the rate limit has no bypass, address limits count address groups, and
idle clients are pinged. Every server here binds 127.0.0.1; every loop is bounded."""

from __future__ import annotations

import json
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
