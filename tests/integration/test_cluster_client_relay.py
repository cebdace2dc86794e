"""Client failover before (and besides) the cluster core: a real server behind a relay that
adds a `cluster` to its `welcome`, as a cluster node's would, naming the relay as node n1 and
the server itself as node n2. Closing the relay is node n1 dying: the client must move to n2,
say so, and see what was said meanwhile exactly once (gap fill with `after`)."""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatkit.client import ChatSession

from helpers import JsonClient, wait_for


class WelcomeRelay:
    """A TCP relay to `target_port` (plain JSON mode) whose server -> client direction adds
    `cluster(relay_port)` to every `welcome`."""

    def __init__(self, target_port: int, cluster: Callable[[int], dict[str, Any]]) -> None:
        self.target_port = target_port
        self.cluster = cluster
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.socks: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, name="relay", daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.socks += [client, upstream]
            for src, dst, rewrite in ((client, upstream, False), (upstream, client, True)):
                thread = threading.Thread(target=self._pump, args=(src, dst, rewrite),
                                          name="relay", daemon=True)
                thread.start()
                self.threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, rewrite: bool) -> None:
        pending = b""
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    break
                if rewrite:
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    data = b"".join(self._rewrite(line) + b"\n" for line in lines)
                dst.sendall(data)
            except OSError:
                break
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _rewrite(self, line: bytes) -> bytes:
        try:
            frame = json.loads(line)
        except ValueError:
            return line
        if isinstance(frame, dict) and frame.get("type") == "welcome":
            frame["cluster"] = self.cluster(self.port)
            return json.dumps(frame).encode()
        return line

    def close(self) -> None:
        """Node n1 dies: nothing listens on its port any more, every connection ends."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for sock in self.socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def cluster_of_two(server_factory) -> Iterator[tuple[WelcomeRelay, Any]]:
    server = server_factory(tls=False)

    def cluster(relay_port: int) -> dict[str, Any]:
        return {"name": "office", "node": "n1", "nodes": [
            {"id": "n1", "addresses": [f"127.0.0.1:{relay_port}"], "fingerprint": None,
             "users": 1},
            {"id": "n2", "addresses": [f"127.0.0.1:{server.port}"], "fingerprint": None,
             "users": 0}]}

    relay = WelcomeRelay(server.port, cluster)
    try:
        yield relay, server
    finally:
        relay.close()


def test_client_moves_to_the_other_node_and_misses_nothing(cluster_of_two) -> None:
    relay, server = cluster_of_two
    events: list[dict[str, Any]] = []
    session = ChatSession("127.0.0.1", relay.port, "ann", tls=False, on_event=events.append,
                          backoff_initial=0.05, backoff_max=0.3, rng=random.Random(1))
    bob = JsonClient(server.port, "bob")
    try:
        session.connect()
        wait_for(lambda: "bob" in session.members(), message="bob seen")
        bob.request({"type": "msg", "room": "lobby", "text": "m1"})
        wait_for(lambda: texts(events).count("m1") == 1, message="m1")
        relay.close()  # node n1 is gone
        for text in ("m2", "m3"):  # said while ann is (probably) away
            bob.request({"type": "msg", "room": "lobby", "text": text})
        moved = wait_for(lambda: [e for e in events if e.get("type") == "status"
                                  and "is gone" in str(e.get("text"))], timeout=10,
                         message="the move")
        assert moved[0]["text"].startswith(
            f"node 127.0.0.1:{relay.port} is gone; moved to 127.0.0.1:{server.port} "
            "(cluster office)")
        assert session.address == f"127.0.0.1:{server.port}"
        bob.request({"type": "msg", "room": "lobby", "text": "m4"})
        wait_for(lambda: "m4" in texts(events), message="m4 live on node n2")
        assert texts(events) == ["m1", "m2", "m3", "m4"]  # each exactly once, in order
        assert session.send_text("back") in ("sent", "paced")
        bob.expect("message", nick="ann", text="back")
    finally:
        session.quit()
        bob.close()


def test_no_cluster_in_welcome_no_failover(server_factory) -> None:
    server = server_factory(tls=False)
    session = ChatSession("127.0.0.1", server.port, "ann", tls=False,
                          backoff_initial=0.05, backoff_max=0.1, max_attempts=2)
    try:
        session.connect()
        assert session.link.failover.view is None
    finally:
        session.quit()


def texts(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["text"]) for e in events if e.get("type") == "message"]
