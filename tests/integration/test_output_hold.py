"""A client's held output: what a `hello` that joins a room holds (its welcome) goes out ahead
of the join's reply, and live events held during the join after it (SocketOutput over a real
socket pair)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from chatkit.server.doors.flusher import Flusher
from chatkit.server.doors.output import SocketOutput

from helpers import wait_for


@pytest.fixture
def pair() -> Iterator[tuple[SocketOutput, socket.socket]]:
    flusher = Flusher()
    flusher.start()
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    try:
        yield SocketOutput(ours, flusher, 1 << 20, "test"), theirs
    finally:
        ours.close()
        theirs.close()
        flusher.stop()


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
    return data


def test_a_greeting_held_before_a_join_goes_out_ahead_of_its_reply(pair):
    output, peer = pair
    output.hold()  # hello: before the nickname is taken
    output.deliver(b"welcome\n")
    output.deliver(b"notice\n")
    output.hold()  # the join
    output.deliver(b"live\n")  # published after the join's history was read
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing out yet: all of it held
    peer.settimeout(5)
    output.release(b"joined\nhistory_end\n")
    expected = b"welcome\nnotice\njoined\nhistory_end\nlive\n"
    assert _read(peer, len(expected)) == expected
    output.deliver(b"after\n")  # no longer held
    assert _read(peer, 6) == b"after\n"


def test_a_greeting_is_released_when_no_join_follows(pair):
    output, peer = pair
    output.hold()
    output.deliver(b"welcome\n")
    output.release(b"")  # the hello's room was refused: only the greeting goes
    assert _read(peer, 8) == b"welcome\n"
    output.release(b"")  # released twice (the join did it already): nothing more, no error
    output.deliver(b"live\n")
    assert _read(peer, 5) == b"live\n"


def test_a_join_without_a_greeting_sends_its_reply_first(pair):
    output, peer = pair
    output.hold()
    output.deliver(b"live\n")
    output.release(b"joined\n")
    assert _read(peer, 12) == b"joined\nlive\n"
    wait_for(lambda: not output.backlog, message="backlog drained")
