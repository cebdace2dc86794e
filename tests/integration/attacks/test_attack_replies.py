"""Issue 13, item 2: a large reply the client asked for (history on join, /history, /rooms)
is paced as the client reads it, never counted against the slow-reader backlog; only a client
that stops reading altogether is cut off."""

from __future__ import annotations

import socket
import time

import pytest

from chatkit.net.sockets import tune_tcp
from chatkit.server.doors import output, reader

from helpers import JsonClient, TextClient, wait_for

BACKLOG = 64 * 1024  # a small backlog: replies of a few hundred KB are "large"
TEXT = "x" * 1000


@pytest.fixture(autouse=True)
def small_send_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's sockets get a fixed 16 KiB send buffer: on loopback the kernel would
    otherwise grow it to 4 MB and take a whole reply at once, and no backlog would form."""

    def tune(sock: socket.socket, *args: float) -> None:
        tune_tcp(sock, *args)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)

    monkeypatch.setattr(reader, "tune_tcp", tune)  # the reader thread tunes its socket


def fill(server_port: int, count: int) -> None:
    """`count` messages of ~1 KB in the lobby, read back in batches (the writer is no slow
    reader either)."""
    writer = JsonClient(server_port, "writer")
    for start in range(0, count, 20):
        batch = range(start, min(count, start + 20))
        for n in batch:
            writer.send({"type": "msg", "room": "lobby", "text": f"{n:04d}{TEXT}"})
        writer.read_until(lambda line, last=batch[-1]: f'"{last:04d}' in line, timeout=20)
    writer.close()


def read_slowly(client: JsonClient, until: str, pause_every: int = 50) -> list[dict]:
    """Frames up to the first of type `until`, pausing now and then (a slow reader)."""
    frames = []
    while True:
        frame = client.read_frame(10)
        assert frame is not None, f"cut off after {len(frames)} frames"
        frames.append(frame)
        if frame["type"] == until:
            return frames
        if len(frames) % pause_every == 0:
            time.sleep(0.05)  # reading slowly is the point of this test


def test_history_on_join_larger_than_the_backlog_reaches_a_slow_reader_whole(server_factory):
    server = server_factory(max_backlog=BACKLOG)
    fill(server.port, 400)  # ~400 KB of history, six times the backlog
    reader = JsonClient(server.port, rcvbuf=4096)
    reader.send({"type": "hello", "version": 1, "nick": "reader", "room": "lobby",
                 "history": 1000})
    frames = read_slowly(reader, "history_end")
    texts = [f["text"][:4] for f in frames if f["type"] == "message"]
    assert texts == [f"{n:04d}" for n in range(400)]
    assert frames[-1]["count"] == 400
    assert reader.request({"type": "ping"})["type"] == "pong"  # still connected
    reader.close()


def test_text_mode_history_larger_than_the_backlog_is_paced(server_factory):
    server = server_factory(max_backlog=BACKLOG)
    fill(server.port, 300)
    reader = TextClient(server.port, "nc")
    reader.say("/history 1000")
    line = reader.read_until(lambda text: "0299" in text, timeout=20)
    assert "0299" in line
    reader.say("/who")
    reader.expect("connected")  # still connected
    reader.close()


def test_rooms_reply_larger_than_the_backlog_is_paced(server_factory):
    server = server_factory(max_backlog=BACKLOG, max_rooms_per_client=20)
    owners = []
    for n in range(6):
        owner = JsonClient(server.port, f"owner{n}", room=None)
        for r in range(20):
            room = f"r{n}-{r}"
            owner.request({"type": "join", "room": room, "history": 0})
            owner.request({"type": "topic", "room": room, "text": "t" * 1900})
        owners.append(owner)
    reader = JsonClient(server.port, "reader", rcvbuf=4096)
    reader.send({"type": "rooms", "ref": "r"})
    time.sleep(0.2)  # not reading at first: the reply waits instead of piling up
    names = []
    while True:
        frame = reader.read_frame(10)
        assert frame is not None, "cut off while reading a reply it asked for"
        if frame["type"] == "rooms":
            names += [room["name"] for room in frame["rooms"]]
            if not frame.get("more"):
                break
    assert len(names) == 121  # ~240 KB over several pages
    assert reader.request({"type": "ping"})["type"] == "pong"
    reader.close()
    for owner in owners:
        owner.close()


def test_client_that_never_reads_a_reply_is_cut_off_after_the_stall_time(
        server_factory, monkeypatch):
    monkeypatch.setattr(output, "REPLY_STALL_SECONDS", 0.5)
    server = server_factory(max_backlog=BACKLOG)
    fill(server.port, 300)
    reader = JsonClient(server.port, "reader", rcvbuf=4096)
    reader.send({"type": "history", "room": "lobby", "limit": 1000})
    wait_for(lambda: all(m.nick != "reader" for m in server.hub.members()), timeout=10)
    reader.close()
