"""The flusher keeps draining backlogs when descriptor numbers are reused."""

from __future__ import annotations

import socket
import threading

from chatkit.server.doors.flusher import Flusher

from helpers import wait_for


class StuckThenGone:
    """Stands in for a Session whose client stopped reading and then vanished."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def flush(self) -> bool:
        return False  # never drains: the peer is not reading


class Draining:
    """Stands in for a Session with a backlog the socket can take at once."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.flushed = threading.Event()

    def flush(self) -> bool:
        self.flushed.set()
        return True


def test_backlog_of_a_new_socket_reusing_a_dead_sockets_descriptor_is_drained():
    flusher = Flusher()
    flusher.start()
    dead, dead_peer = socket.socketpair()
    # Fill the dead socket so it is not writable: the flusher keeps watching it.
    dead.setblocking(False)
    try:
        while True:
            dead.send(b"x" * 65536)
    except BlockingIOError:
        pass
    try:
        stuck = StuckThenGone(dead)
        flusher.watch(stuck)  # type: ignore[arg-type]
        wait_for(lambda: any(k.data is stuck for k in flusher._selector.get_map().values()),
                 message="dead session watched")
        number = dead.fileno()
        dead.close()  # the session died; nobody told the flusher
        fresh, fresh_peer = socket.socketpair()
        try:
            assert number in (fresh.fileno(), fresh_peer.fileno()), "descriptor not reused"
            reused = fresh if fresh.fileno() == number else fresh_peer
            session = Draining(reused)
            flusher.watch(session)  # type: ignore[arg-type]
            assert session.flushed.wait(5), "the new socket's backlog was never drained"
        finally:
            fresh.close()
            fresh_peer.close()
    finally:
        dead_peer.close()
        flusher.stop()
