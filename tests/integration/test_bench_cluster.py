"""`chatkit bench` over the nodes of one cluster (issue 18): clients spread over the nodes,
right counts, and the latencies between nodes reported apart. No timings are asserted (speed
targets live in benchmarks/README.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatkit.bench import BenchConfig, run_bench

from helpers import chatkit_cmd, cli_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_nodes(cluster):
    """Two nodes of one cluster whose flood protection does not drop benchmark traffic."""
    return [cluster(tls=False, rate_limit=0, max_per_address=0) for _ in range(2)]


@pytest.mark.parametrize("processes", [1, 2])
def test_clients_spread_over_two_nodes_count_exactly(two_nodes, processes):
    addresses = [("127.0.0.1", node.port) for node in two_nodes]
    result = run_bench(BenchConfig(addresses=addresses, clients=6, senders=3, messages=20,
                                   duration=20, window=4, processes=processes))
    assert result.clients_connected == 6
    assert result.deliveries == result.expected_deliveries == 6 * 60
    assert (result.lost, result.duplicated, result.reordered, result.errors) == (0, 0, 0, 0)
    # 3 receivers on each node (the clients were spread): every message reaches 3 on the
    # other node and 3 on its own
    assert set(result.cross_latency_ms) == set(result.local_latency_ms) == \
        {"p50", "p95", "p99", "max"}
    assert result.latency_ms["max"] == max(result.cross_latency_ms["max"],
                                           result.local_latency_ms["max"])


def test_cli_two_addresses_json_and_summary(two_nodes, tmp_path):
    where = [f"127.0.0.1:{node.port}" for node in two_nodes]
    done = subprocess.run(
        chatkit_cmd("bench", *where, "--clients", "4", "--senders", "2", "--messages", "10",
                    "--no-tls", "--json"),
        capture_output=True, text=True, timeout=60, env=cli_env(str(tmp_path)))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["deliveries"] == data["expected_deliveries"] == 80 and data["ok"] is True
    assert data["config"]["addresses"] == [["127.0.0.1", node.port] for node in two_nodes]
    assert data["cross_latency_ms"]["p99"] >= data["cross_latency_ms"]["p50"] > 0
    human = subprocess.run(
        chatkit_cmd("bench", *where, "--clients", "4", "--senders", "2", "--messages", "5",
                    "--no-tls"),
        capture_output=True, text=True, timeout=60, env=cli_env(str(tmp_path)))
    assert human.returncode == 0, human.stderr
    assert f"target       chatkit {' '.join(where)} room bench-" in human.stdout
    assert "cross-node   p50 " in human.stdout and "same node    p50 " in human.stdout


def test_cluster_suite_smoke(tmp_path):
    """`benchmarks/run.py --cluster-only --smoke` end to end: one node, a cluster (spread over
    its nodes, cross-node latency), Redis pub/sub, clean counts, the targets table."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--cluster-only", "--smoke",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=90, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    raw = list(tmp_path.glob("smoke-cluster-*.json"))
    assert len(raw) == 1
    records = json.loads(raw[0].read_text())["records"]
    assert {r["target"] for r in records} == {"node", "cluster", "redis"}
    assert all(r["ok"] and r["deliveries"] == r["expected_deliveries"] for r in records)
    spread = [r for r in records if r["target"] == "cluster" and r["nodes"] == 2]
    assert spread and all(r["cross_latency_ms"] and len(r["node_cpu_s"]) == 2 for r in spread)
    assert "| cross-node p99 at 200 msg/s ≤ 2× the single node's p99 (6 clients) |" \
        in done.stdout
    assert "| no loss or reordering in any cluster cell |" in done.stdout
