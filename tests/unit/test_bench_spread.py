"""`chatkit bench` over several servers (the nodes of a cluster), without sockets: which server
each connection goes to, which senders are on another server than a receiver, merging the
cross-node latencies apart, and how the command line shows them."""

from __future__ import annotations

import array

import pytest

from chatkit.bench import BenchConfig, BenchResult, run_bench
from chatkit.bench.merge import merge
from chatkit.bench.spread import crossing
from chatkit.cli.bench_output import summary
from chatkit.errors import ConfigError

TWO = [("127.0.0.1", 5001), ("127.0.0.1", 5002)]


def test_connections_go_to_the_servers_in_turn():
    config = BenchConfig(host="127.0.0.1", port=4000, addresses=TWO)
    assert [config.address(i) for i in range(5)] == [TWO[0], TWO[1], TWO[0], TWO[1], TWO[0]]
    one = BenchConfig(host="127.0.0.9", port=4000)
    assert one.servers() == [("127.0.0.9", 4000)] and one.address(7) == ("127.0.0.9", 4000)


def test_senders_on_another_server():
    # sender sid is connection sid: on server sid % n
    assert crossing(0, 2, 4) == [False, True, False, True]
    assert crossing(3, 2, 4) == [True, False, True, False]
    assert crossing(2, 3, 4) == [True, True, False, True]
    assert crossing(5, 1, 4) == []  # one server: the ordinary hot loop, nothing to split


def test_several_addresses_are_for_chatkit_servers():
    with pytest.raises(ConfigError, match="several addresses"):
        run_bench(BenchConfig(target="redis", addresses=TWO))


def _part(**changes):
    part = {"receivers": 1, "connect_s": 0.1, "deliveries": 0, "first_send": 0,
            "last_delivery": 0, "samples": array.array("q"), "stride": 1, "max_latency": 0,
            "lost": [0], "duplicated": [0], "reordered": [0], "errors": 0,
            "error_samples": [], "stalled": {}, "stalled_gone": []}
    return {**part, **changes}


def test_merge_keeps_cross_node_latencies_apart():
    result = BenchResult(config={"addresses": TWO})
    merge(result, [4], [
        _part(samples=array.array("q", [1_000_000, 2_000_000]), max_latency=2_500_000,
              cross_samples=array.array("q", [5_000_000, 6_000_000]),
              cross_max_latency=9_000_000),
        _part(samples=array.array("q", [3_000_000]), stride=2, max_latency=3_000_000,
              cross_samples=array.array("q", [7_000_000]), cross_max_latency=7_000_000),
    ])
    # the stride-1 shard thinned to every 2nd sample: local 1, 3 ms; cross 5, 7 ms
    assert result.local_latency_ms == {"p50": 1.0, "p95": 3.0, "p99": 3.0, "max": 3.0}
    assert result.cross_latency_ms == {"p50": 5.0, "p95": 7.0, "p99": 7.0, "max": 9.0}
    assert result.latency_ms["max"] == 9.0 and result.latency_ms["p50"] == 3.0
    one = BenchResult(config={})
    merge(one, [1], [_part(samples=array.array("q", [1_000_000]), max_latency=1_000_000)])
    assert one.cross_latency_ms == one.local_latency_ms == {}
    assert one.latency_ms["max"] == 1.0


def test_summary_names_every_server_and_the_cross_node_line():
    config = {"target": "chatkit", "host": "127.0.0.1", "port": 5001, "addresses": TWO,
              "room": "bench-abc", "tls": False, "senders": 2, "rate": 200.0, "window": 16,
              "size": 64, "stalled": 0}
    figures = {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0}
    text = summary(BenchResult(config=config, latency_ms=figures, cross_latency_ms=figures,
                               local_latency_ms=figures)).splitlines()
    assert text[0] == "target       chatkit 127.0.0.1:5001 127.0.0.1:5002 room bench-abc"
    assert "cross-node   p50 1.00  p95 2.00  p99 3.00  max 4.00" in text
    assert "same node    p50 1.00  p95 2.00  p99 3.00  max 4.00" in text
