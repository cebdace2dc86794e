"""Where a client goes when its cluster node is gone (chatkit/client/cluster.py): the view of
the last `welcome`, the order of the other nodes, the trust rule, trying them in turn."""

from __future__ import annotations

from typing import Any

import pytest

from chatkit.client.cluster import ClusterView, Target, fail_over, failover_targets
from chatkit.errors import ProtocolError, RefusedError, UnreachableError
from chatkit.tls import TrustError

FP1, FP2, FP3 = ("SHA256:" + c * 43 for c in "ABC")


def node(id_: str, users: int, *addresses: str, fingerprint: str | None = None
         ) -> dict[str, Any]:
    return {"id": id_, "addresses": list(addresses), "fingerprint": fingerprint,
            "users": users}


def view(*nodes: dict[str, Any], here: str = "n1") -> ClusterView:
    found = ClusterView.from_welcome({"cluster": {"name": "office", "node": here,
                                                  "nodes": list(nodes)}})
    assert found is not None
    return found


def never_pinned(address: str) -> bool:
    return False


def test_no_cluster_no_view() -> None:
    assert ClusterView.from_welcome({"type": "welcome"}) is None


def test_only_ip_addresses_with_a_port_are_kept() -> None:
    v = view(node("n1", 0, "127.0.0.1:5001"),
             node("n2", 0, "evil.example:80", "10.0.0.2", "0.0.0.0:5", "[::]:5",
                  "224.0.0.1:5", "10.0.0.2:99999", "[fe80::1]:7", "10.0.0.2:5002"))
    assert v.nodes[1].addresses == (("fe80::1", 7), ("10.0.0.2", 5002))


def test_the_other_nodes_fewest_users_first() -> None:
    v = view(node("n1", 0, "127.0.0.1:5001"), node("n2", 9, "127.0.0.1:5002"),
             node("n3", 2, "127.0.0.1:5003"), node("n4", 2, "127.0.0.1:5004"))
    assert [n.id for n in v.others()] == ["n3", "n4", "n2"]
    targets = failover_targets(v, "127.0.0.1", tls=False, verified=False,
                               pinned=never_pinned)
    assert [t.address for t in targets] == ["127.0.0.1:5003", "127.0.0.1:5004",
                                            "127.0.0.1:5002"]


def test_loopback_addresses_only_from_loopback_and_same_ip_version_first() -> None:
    v = view(node("n1", 0), node("n2", 0, "127.0.0.1:5002", "[2001:db8::2]:5002",
                                 "192.168.1.2:5002"))
    remote = failover_targets(v, "192.168.1.1", tls=False, verified=False,
                              pinned=never_pinned)
    assert [t.address for t in remote] == ["192.168.1.2:5002", "[2001:db8::2]:5002"]
    local = failover_targets(v, "127.0.0.1", tls=False, verified=False, pinned=never_pinned)
    assert [t.address for t in local] == ["127.0.0.1:5002", "192.168.1.2:5002"]
    v6 = failover_targets(v, "2001:db8::1", tls=False, verified=False, pinned=never_pinned)
    assert v6[0].address == "[2001:db8::2]:5002"
    by_name = failover_targets(v, "localhost", tls=False, verified=False, pinned=never_pinned)
    assert by_name[0].address == "127.0.0.1:5002"
    remote_name = failover_targets(v, "chat.example", tls=False, verified=False,
                                   pinned=never_pinned)
    assert [t.address for t in remote_name] == ["[2001:db8::2]:5002", "192.168.1.2:5002"]


def test_trust_a_verified_channel_names_the_certificate_to_expect() -> None:
    v = view(node("n1", 0, "10.0.0.1:1", fingerprint=FP1),
             node("n2", 0, "10.0.0.2:2", fingerprint=FP2),
             node("n3", 1, "10.0.0.3:3"))  # listed without a fingerprint
    targets = failover_targets(v, "10.0.0.1", tls=True, verified=True, pinned=never_pinned)
    assert targets == [Target("n2", "10.0.0.2", 2, FP2)]  # n3 is never trusted on first use
    pinned = failover_targets(v, "10.0.0.1", tls=True, verified=True,
                              pinned=lambda address: address == "10.0.0.3:3")
    assert pinned == [Target("n2", "10.0.0.2", 2, FP2), Target("n3", "10.0.0.3", 3, None)]


@pytest.mark.parametrize(("tls", "verified"), [(False, False), (True, False)])
def test_trust_no_certificate_check_no_fingerprint(tls: bool, verified: bool) -> None:
    v = view(node("n1", 0, "10.0.0.1:1"), node("n2", 0, "10.0.0.2:2", fingerprint=FP2),
             node("n3", 1, "10.0.0.3:3"))
    targets = failover_targets(v, "10.0.0.1", tls=tls, verified=verified,
                               pinned=never_pinned)
    assert [(t.node, t.fingerprint) for t in targets] == [("n2", None), ("n3", None)]


def test_excluded_nodes_are_left_out() -> None:
    v = view(node("n1", 0), node("n2", 0, "10.0.0.2:2"), node("n3", 0, "10.0.0.3:3"))
    targets = failover_targets(v, "10.0.0.1", tls=False, verified=False,
                               pinned=never_pinned, exclude={"n2"})
    assert [t.node for t in targets] == ["n3"]


class Opener:
    """Stands for the link's connect: each address fails as told, or "connects"."""

    def __init__(self, outcomes: dict[str, Exception | None]) -> None:
        self.outcomes = outcomes
        self.tried: list[str] = []

    def __call__(self, target: Target) -> Any:
        self.tried.append(target.address)
        outcome = self.outcomes.get(target.address)
        if outcome is not None:
            raise outcome
        return f"connection to {target.address}"


def targets(*addresses: str) -> list[Target]:
    return [Target(f"n{i}", a.split(":")[0], int(a.split(":")[1]), None)
            for i, a in enumerate(addresses)]


def test_fail_over_takes_the_first_that_answers() -> None:
    said: list[str] = []
    opener = Opener({"10.0.0.2:2": UnreachableError("refused"),
                     "10.0.0.3:3": RefusedError("nick taken", "nick_taken"),
                     "10.0.0.4:4": ProtocolError("not chatkit")})
    moved = fail_over(targets("10.0.0.2:2", "10.0.0.3:3", "10.0.0.4:4", "10.0.0.5:5"),
                      opener, said.append, set())
    assert moved is not None and moved[0] == "connection to 10.0.0.5:5"
    assert opener.tried == ["10.0.0.2:2", "10.0.0.3:3", "10.0.0.4:4", "10.0.0.5:5"]
    assert len(said) == 2 and "10.0.0.3:3" in said[0] and "10.0.0.4:4" in said[1]


def test_fail_over_distrusts_a_node_with_another_certificate() -> None:
    said: list[str] = []
    distrusted: set[str] = set()
    wrong = TrustError("presented another", announced=FP2)
    opener = Opener({"10.0.0.2:2": wrong, "10.0.0.3:3": UnreachableError("gone")})
    assert fail_over(targets("10.0.0.2:2", "10.0.0.3:3"), opener, said.append,
                     distrusted) is None
    assert distrusted == {"n0"} and "impersonating" in said[0] and FP2 in said[0]
    opener.tried.clear()
    fail_over(targets("10.0.0.2:2", "10.0.0.3:3"), opener, said.append, distrusted)
    assert opener.tried == ["10.0.0.3:3"]  # never again


def test_fail_over_stops_when_the_user_quits() -> None:
    opener = Opener({})
    assert fail_over(targets("10.0.0.2:2"), opener, print, set(), lambda: True) is None
    assert opener.tried == []
