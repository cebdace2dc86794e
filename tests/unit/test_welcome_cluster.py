"""The `cluster` field of `welcome` (docs/protocol.md, "Clusters"): checked on arrival, and a
malformed one is dropped from the frame, never an error (the connection works without it)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chatkit.protocol import check_server_frame
from chatkit.protocol.checks import MAX_CLUSTER_NODES, cluster_ok

FP = "SHA256:" + "A" * 43


def welcome(cluster: Any) -> dict[str, Any]:
    return {"type": "welcome", "version": 1, "server": "n1", "nick": "ann", "id": 1,
            "ts": 1.0, "cluster": cluster}


def good() -> dict[str, Any]:
    return {"name": "office", "node": "n1", "nodes": [
        {"id": "n1", "addresses": ["127.0.0.1:5001"], "fingerprint": FP, "users": 3},
        {"id": "n2", "addresses": ["127.0.0.1:5002", "[::1]:5002"], "fingerprint": None,
         "users": 0}]}


def test_a_good_cluster_is_kept() -> None:
    frame = check_server_frame(welcome(good()))
    assert frame["cluster"] == good()


def _bad_variants() -> list[tuple[str, Any]]:
    variants: list[tuple[str, Any]] = [
        ("not an object", "office"), ("no name", {**good(), "name": None}),
        ("empty name", {**good(), "name": ""}), ("long name", {**good(), "name": "x" * 65}),
        ("no node", {k: v for k, v in good().items() if k != "node"}),
        ("nodes not a list", {**good(), "nodes": {"n1": {}}}),
        ("no nodes", {**good(), "nodes": []}),
        ("too many nodes", {**good(), "nodes": [
            {"id": f"n{i}", "addresses": [], "fingerprint": None, "users": 0}
            for i in range(MAX_CLUSTER_NODES + 1)]}),
    ]
    for field, value in [("id", 5), ("id", ""), ("id", "n2"), ("addresses", "1.2.3.4:5"),
                         ("addresses", ["1.2.3.4:5"] * 17), ("addresses", [5]),
                         ("addresses", ["x" * 65]), ("fingerprint", 7),
                         ("fingerprint", "SHA256:\n"), ("fingerprint", "a" * 129),
                         ("users", -1), ("users", True), ("users", "3"), ("users", 10**10),
                         ("users", None)]:
        cluster = good()
        cluster["nodes"][0][field] = value  # ("id", "n2"): two nodes with one id
        variants.append((f"{field}={value!r:.20}", cluster))
    missing = good()
    del missing["nodes"][1]["users"]
    variants.append(("node without users", missing))
    variants.append(("node not an object", {**good(), "nodes": ["n1"]}))
    return variants


@pytest.mark.parametrize(("why", "cluster"), _bad_variants(), ids=lambda v: str(v)[:30])
def test_a_bad_cluster_is_dropped_and_the_welcome_kept(why: str, cluster: Any) -> None:
    assert not cluster_ok(cluster), why
    frame = check_server_frame(welcome(copy.deepcopy(cluster)))
    assert "cluster" not in frame
    assert frame["nick"] == "ann"


def test_64_nodes_are_accepted() -> None:
    cluster = {**good(), "nodes": [
        {"id": f"n{i}", "addresses": ["10.0.0.1:5000"] * 16, "fingerprint": FP,
         "users": i} for i in range(MAX_CLUSTER_NODES)]}
    assert cluster_ok(cluster)


def test_a_welcome_without_cluster_is_unchanged() -> None:
    frame = welcome(None)
    del frame["cluster"]
    assert check_server_frame(dict(frame)) == frame
