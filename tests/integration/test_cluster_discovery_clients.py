"""Clusters seen by discovery (loopback only, a discovery port of the test's own): two real
servers whose responders describe them as nodes of one cluster, as `serve --cluster` does
(`Server.info()` gains `cluster` and `node`). `chatkit discover` groups them, `send
--server CLUSTER` and `join --server CLUSTER` go to the least loaded node."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from chatkit.discovery import DiscoveryResponder

from helpers import JsonClient, chatkit_cmd, cli_env, free_udp_port

LOOPBACK_BROADCAST = "127.255.255.255"


def run(home: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(chatkit_cmd(*args), input=stdin, capture_output=True, text=True,
                          env=cli_env(home), timeout=30)


@pytest.fixture
def nodes(server_factory) -> Iterator[tuple[int, list[Any]]]:
    """Two servers announced as nodes n1 and n2 of cluster "office", plus a lone server;
    alpha has two users from the start (its first description already counts them)."""
    port = free_udp_port()
    servers, responders, busy = [], [], []
    for name, node in (("alpha", "n1"), ("beta", "n2"), ("lone", None)):
        server = server_factory(name=name, tls=False)
        if name == "alpha":
            busy += [JsonClient(server.port, f"u{i}") for i in range(2)]

        def info(server: Any = server, node: str | None = node) -> dict[str, Any]:
            extra = {"cluster": "office", "node": node} if node else {}
            return {**server.info(), **extra}

        responder = DiscoveryResponder(bind_host="127.0.0.1", chat_port=server.port,
                                       discovery_port=port, info=info)
        responder.start()
        servers.append(server)
        responders.append(responder)
    try:
        yield port, servers
    finally:
        for responder in responders:
            responder.stop()
        for client in busy:
            client.close()


def test_discover_groups_the_nodes_of_a_cluster(nodes, tmp_path) -> None:
    port, (alpha, beta, lone) = nodes
    home = str(tmp_path / "client")
    args = ("discover", "--broadcast", LOOPBACK_BROADCAST, "--discovery-port", str(port),
            "--timeout", "1")
    result = run(home, *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("lone ")
    assert lines[2] == "cluster office: 2 nodes, 2 users"
    assert lines[3].startswith("  alpha (n1)") and f"127.0.0.1:{alpha.port}" in lines[3]
    assert lines[4].startswith("  beta (n2)") and f"127.0.0.1:{beta.port}" in lines[4]
    listed = json.loads(run(home, *args, "--json").stdout)["servers"]
    assert sorted((s["name"], s["cluster"], s["node"]) for s in listed) == [
        ("alpha", "office", "n1"), ("beta", "office", "n2"), ("lone", None, None)]


def test_send_and_join_to_a_cluster_name_pick_the_least_loaded_node(nodes, tmp_path) -> None:
    port, (alpha, beta, _) = nodes
    home = str(tmp_path / "client")
    watcher = JsonClient(beta.port, "watcher")  # alpha: 2 users, beta: 0 (then 1)
    try:
        where = ("--server", "office", "--broadcast", LOOPBACK_BROADCAST,
                 "--discovery-port", str(port), "--no-tls")
        sent = run(home, "send", "--nick", "bot", *where, "to the cluster")
        assert sent.returncode == 0, sent.stderr
        assert f"found cluster 'office': node n2 at 127.0.0.1:{beta.port}" in sent.stderr
        assert watcher.expect("message", nick="bot")["text"] == "to the cluster"
        joined = run(home, "join", "--nick", "piper", *where, stdin="hello office\n")
        assert joined.returncode == 0, joined.stderr
        assert watcher.expect("message", nick="piper")["text"] == "hello office"
    finally:
        watcher.close()
