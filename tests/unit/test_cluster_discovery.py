"""Clusters in discovery, without sockets: the `cluster` and `node` of a description, the
grouped table and JSON of `chatkit discover`, a cluster's name chosen with `--server`, and
which node is picked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatkit import discovery as d
from chatkit.cli import discover_output as o


def body(**extra: Any) -> dict[str, Any]:
    return {"type": "reply", "name": "n1", "instance": "abc", "port": 5001,
            "addresses": ["127.0.0.1"], "version": 1, "tls": True, "fingerprint": None,
            "users": 1, "rooms": 1, **extra}


def test_a_description_carries_its_cluster_and_node() -> None:
    info = d.parse_server_info(body(cluster="office\x1b[31m", node="n-1"))
    assert (info["cluster"], info["node"]) == ("office", "n-1")
    plain = d.parse_server_info(body())
    assert (plain["cluster"], plain["node"]) == (None, None)
    assert d.parse_server_info(body(cluster="x" * 200))["cluster"] == "x" * d.MAX_NAME


@pytest.mark.parametrize("bad", [5, "", "\x1b[31m", ["office"], True])
def test_a_bad_cluster_or_node_makes_the_datagram_invalid(bad: object) -> None:
    for field in ("cluster", "node"):
        with pytest.raises(d.DatagramError):
            d.parse_server_info(body(**{field: bad}))


def found(name: str, users: int, port: int, cluster: str | None = None,
          node: str | None = None, rtt: float | None = 0.001) -> d.ServerFound:
    return d.ServerFound(name=name, instance=f"i{port}", host="127.0.0.1", port=port,
                         addresses=["127.0.0.1"], version=1, tls=True, fingerprint=None,
                         users=users, rooms=1, rtt=rtt, cluster=cluster, node=node)


SERVERS = [found("lab", 2, 4000), found("a", 3, 5001, "office", "n1"),
           found("b", 1, 5002, "Office", "n2"), found("c", 0, 6001, "zoo", "c")]


def test_the_table_groups_each_cluster_under_one_heading() -> None:
    lines = o.format_table(SERVERS).splitlines()
    assert lines[0].split()[:3] == ["NAME", "ADDRESS", "USERS"]
    assert lines[1].startswith("lab ")
    assert lines[2] == "cluster office: 2 nodes, 4 users"
    assert lines[3].startswith("  a (n1)") and lines[3].split()[3] == "3"
    assert lines[4].startswith("  b (n2)") and lines[4].split()[3] == "1"
    assert lines[5] == "cluster zoo: 1 node, 0 users"
    assert lines[6].startswith("  c ") and "127.0.0.1:6001" in lines[6]
    assert len(lines) == 7


def test_json_names_each_servers_cluster_and_node() -> None:
    servers = json.loads(o.format_json(SERVERS))["servers"]
    assert [(s["cluster"], s["node"]) for s in servers] == [
        (None, None), ("office", "n1"), ("Office", "n2"), ("zoo", "c")]


def test_watch_lines_name_the_cluster() -> None:
    event = d.WatchEvent("appear", SERVERS[1], "probe")
    assert o.format_event(event).endswith("[cluster office, node n1]")


def test_server_chooses_a_cluster_by_name() -> None:
    assert [s.port for s in d.select_servers(SERVERS, "OFFICE")] == [5001, 5002]
    assert [s.port for s in d.select_servers(SERVERS, "lab")] == [4000]
    assert d.one_cluster(d.select_servers(SERVERS, "office")) == "office"
    assert d.one_cluster(SERVERS) is None
    assert d.one_cluster([SERVERS[0]]) is None


def test_the_least_loaded_reachable_node_is_picked() -> None:
    nodes = [found("a", 3, 5001, "office", "n1"), found("b", 1, 5002, "office", "n2"),
             found("c", 1, 5003, "office", "n3", rtt=0.0001)]
    asked: list[int] = []

    def reachable(host: str, port: int, timeout: float) -> bool:
        asked.append(port)
        return port != 5003

    assert d.pick_node(nodes, reachable=reachable).port == 5002
    assert asked == [5003, 5002]  # equal users: the quicker first; 5003 did not accept
    assert d.pick_node(nodes, reachable=lambda *a: False).port == 5003  # none: least loaded


def test_a_node_is_remembered_under_its_cluster_and_id() -> None:
    assert SERVERS[1].identity == "office/n1"
    assert SERVERS[0].identity == "lab"
