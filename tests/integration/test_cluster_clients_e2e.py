"""Clients of a real cluster: a real redis-server on a loopback port, two real `chatkit serve
--cluster` processes (TLS on, each with its own certificate), real `chatkit join` (piped),
`discover` and `send` processes. Node 1 is SIGKILLed under a client: the client moves to
node 2 (trusting its certificate on node 1's word), says so, and sees what was said meanwhile
exactly once. Discovery groups the nodes; `--server CLUSTER` connects."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import JsonClient, ServeProcess, chatkit_cmd, cli_env, free_udp_port, wait_for

LOOPBACK_BROADCAST = "127.255.255.255"
CLUSTER = "office"
TIMEOUT = 20.0  # a node's death is noticed within ~6 s; two slow processes on 2 cores


class PipedJoin:
    """A real `chatkit join` without a terminal: lines in on stdin, events out on stdout,
    the client's own news (`chatkit: ...`) on stderr; both read by threads into lists."""

    def __init__(self, home: str, *args: str) -> None:
        self.proc = subprocess.Popen(chatkit_cmd("join", *args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=cli_env(home))
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                        for stream, into in ((self.proc.stdout, self.out),
                                             (self.proc.stderr, self.err))]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_out(self, text: str, timeout: float = TIMEOUT) -> str:
        return wait_for(lambda: next((line for line in self.out if text in line), None),
                        timeout, f"{text!r} on stdout; out={self.out} err={self.err}")

    def wait_err(self, text: str, timeout: float = TIMEOUT) -> str:
        return wait_for(lambda: next((line for line in self.err if text in line), None),
                        timeout, f"{text!r} on stderr; err={self.err}")

    def close(self) -> int:
        try:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                self.proc.stdin.close()  # end of input: the client leaves
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
        finally:
            for thread in self.threads:
                thread.join(5)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def two_nodes(redis_server, tmp_path) -> Iterator[tuple[list[ServeProcess], int]]:
    """Two nodes of cluster "office" on 127.0.0.1, discovery on a private port; each node
    sees the other in its welcome before the test starts."""
    discovery_port = free_udp_port()
    url = redis_server.url
    nodes: list[ServeProcess] = []
    try:
        for name in ("n1", "n2"):
            nodes.append(ServeProcess.start(
                ["--cluster", url, "--cluster-name", CLUSTER, "--name", name,
                 "--discovery-port", str(discovery_port), "--no-history"],
                env_home=str(tmp_path / f"home-{name}")))
        wait_for(lambda: len(welcome_cluster(nodes[0].port).get("nodes", [])) == 2,
                 TIMEOUT, "node 1 listing both nodes")
        yield nodes, discovery_port
    finally:
        for node in nodes:
            node.stop()


def welcome_cluster(port: int) -> dict[str, Any]:
    """The `cluster` of a welcome from the node at `port` (a short plain-text-free visit)."""
    client = JsonClient(port, f"probe{port}", room=None)
    try:
        assert client.welcome is not None
        return dict(client.welcome.get("cluster") or {})
    finally:
        client.close()


def test_join_moves_to_the_other_node_when_its_node_is_killed(two_nodes, tmp_path) -> None:
    (node1, node2), _ = two_nodes
    bob = JsonClient(node2.port, "bob")
    ann = PipedJoin(str(tmp_path / "ann"), f"127.0.0.1:{node1.port}", "--nick", "ann")
    try:
        ann.wait_err("pinned its certificate")  # first use: node 1 is trusted from now on
        bob.request({"type": "msg", "room": "lobby", "text": "m1"})
        ann.wait_out("<bob> m1")
        node1.proc.kill()  # SIGKILL, by its PID: no goodbye, no bye frame
        node1.proc.wait(10)
        for text in ("m2", "m3"):  # while ann is moving
            bob.request({"type": "msg", "room": "lobby", "text": text})
        moved = ann.wait_err("is gone; moved to")
        assert (f"node 127.0.0.1:{node1.port} is gone; moved to 127.0.0.1:{node2.port} "
                f"(cluster {CLUSTER})") in moved
        bob.request({"type": "msg", "room": "lobby", "text": "m4"})
        ann.wait_out("<bob> m4")
        said = [line.split("<bob> ", 1)[1] for line in ann.out if "<bob> " in line]
        assert said == ["m1", "m2", "m3", "m4"], ann.out  # each exactly once, in order
        ann.say("back on node 2")
        assert bob.expect("message", nick="ann", timeout=TIMEOUT)["text"] == "back on node 2"
        # node 2's certificate was taken on node 1's word: pinned, without asking
        note = ann.wait_err(f"pinned the certificate of cluster node 127.0.0.1:{node2.port}")
        pins = json.loads((tmp_path / "ann" / "config" / "known_servers.json").read_text())
        assert f", {pins[f'127.0.0.1:{node2.port}']}, as its cluster named it" in note
    finally:
        assert ann.close() == 0, ann.err
        bob.close()


def test_discover_groups_the_nodes_and_server_takes_the_cluster_name(two_nodes,
                                                                     tmp_path) -> None:
    (node1, node2), discovery_port = two_nodes
    home = str(tmp_path / "client")
    where = ("--broadcast", LOOPBACK_BROADCAST, "--discovery-port", str(discovery_port))
    listed = subprocess.run(chatkit_cmd("discover", *where, "--timeout", "1.5"),
                            capture_output=True, text=True, env=cli_env(home), timeout=30)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    heading = lines.index(next(line for line in lines if line.startswith("cluster ")))
    assert lines[heading].startswith(f"cluster {CLUSTER}: 2 nodes")
    nodes = lines[heading + 1:heading + 3]
    assert all(line.startswith("  n") for line in nodes)
    assert {f"127.0.0.1:{node1.port}", f"127.0.0.1:{node2.port}"} == {
        word for line in nodes for word in line.split() if word.startswith("127.0.0.1:")}
    as_json = subprocess.run(chatkit_cmd("discover", *where, "--timeout", "1.5", "--json"),
                             capture_output=True, text=True, env=cli_env(home), timeout=30)
    servers = json.loads(as_json.stdout)["servers"]
    assert sorted(s["cluster"] for s in servers) == [CLUSTER, CLUSTER]
    listener = JsonClient(node2.port, "listener")
    try:
        sent = subprocess.run(chatkit_cmd("send", "--server", CLUSTER, *where, "--nick",
                                          "bot", "hello cluster"),
                              capture_output=True, text=True, env=cli_env(home), timeout=30)
        assert sent.returncode == 0, sent.stderr
        assert f"found cluster '{CLUSTER}': node" in sent.stderr
        assert listener.expect("message", nick="bot", timeout=TIMEOUT)["text"] == \
            "hello cluster"
        joined = subprocess.run(chatkit_cmd("join", "--server", CLUSTER, *where, "--nick",
                                            "piper"), input="hi from a pipe\n",
                                capture_output=True, text=True, env=cli_env(home),
                                timeout=30)
        assert joined.returncode == 0, joined.stderr
        assert listener.expect("message", nick="piper", timeout=TIMEOUT)["text"] == \
            "hi from a pipe"
    finally:
        listener.close()


def test_two_nodes_on_one_port_with_reuse_port(redis_server, tmp_path) -> None:
    nodes: list[ServeProcess] = []
    clients: dict[str, JsonClient] = {}
    try:
        for name in ("a", "b"):
            nodes.append(ServeProcess.start(
                ["--cluster", redis_server.url, "--cluster-name", CLUSTER, "--name", name,
                 "--reuse-port", "--no-discovery", "--no-history"],
                env_home=str(tmp_path / f"home-{name}"),
                port=nodes[0].port if nodes else 0))
        port = nodes[0].port
        for attempt in range(64):  # one port; the kernel picks a process per connection
            client = JsonClient(port, f"p{attempt}")
            assert client.welcome is not None
            server = client.welcome["server"]
            if server in clients:
                client.close()
            else:
                clients[server] = client
            if len(clients) == 2:
                break
        assert set(clients) == {"a", "b"}
        clients["a"].request({"type": "msg", "room": "lobby", "text": "one port, two cores"})
        heard = clients["b"].expect("message", text="one port, two cores", timeout=TIMEOUT)
        assert heard["nick"] == clients["a"].welcome["nick"]  # type: ignore[index]
    finally:
        for client in clients.values():
            client.close()
        for node in nodes:
            node.stop()
