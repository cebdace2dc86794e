"""`chatkit bench` and the benchmark suite against real servers: right counts, no timings.

Speed targets live in benchmarks/README.md, never here: these tests only check that the
generator counts deliveries, losses, duplicates and reordering correctly, that the command line
works, and that `benchmarks/run.py --smoke` runs end to end.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatkit.bench import BenchConfig, run_bench
from chatkit.cli.bench_output import summary
from chatkit.errors import RefusedError, UnreachableError

from helpers import chatkit_cmd, cli_env, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def open_server(server_factory):
    """A server whose flood protection does not drop benchmark traffic."""
    return server_factory(rate_limit=0, max_per_address=0)


def test_max_mode_every_message_delivered_once_in_order(open_server):
    result = run_bench(BenchConfig(port=open_server.port, clients=5, senders=2, messages=20,
                                   duration=10, window=4))
    assert result.clients_connected == 5
    assert result.sent == 40
    assert result.deliveries == result.expected_deliveries == 200  # 5 receivers x 40
    assert (result.lost, result.duplicated, result.reordered, result.errors) == (0, 0, 0, 0)
    assert result.ok
    assert [s["sent"] for s in result.per_sender] == [20, 20]
    assert set(result.latency_ms) == {"p50", "p95", "p99", "max"}
    assert 0 <= result.latency_ms["p50"] <= result.latency_ms["p99"] <= result.latency_ms["max"]
    assert result.generator_cpu_s > 0
    data = result.to_dict()
    assert data["ok"] is True and data["config"]["room"].startswith("bench-")
    json.dumps(data)  # the --json output is plain JSON


def test_rate_mode_and_a_stalled_client(open_server):
    result = run_bench(BenchConfig(port=open_server.port, clients=4, senders=2, messages=5,
                                   rate=400, duration=10, stalled=1))
    assert result.clients_connected == 5  # 4 receivers and the one that never reads
    assert result.deliveries == result.expected_deliveries == 4 * 10
    assert result.ok


def test_a_room_shared_with_people_is_not_disturbed(open_server):
    """Other traffic in the room (a person chatting) is neither counted nor an error."""
    from helpers import JsonClient

    person = JsonClient(open_server.port, "person", room="shared")
    person.send({"type": "msg", "room": "shared", "text": "@@ not a bench message @@"})
    result = run_bench(BenchConfig(port=open_server.port, clients=3, senders=1, messages=10,
                                   room="shared", duration=10))
    assert result.deliveries == 30 and result.ok
    person.close()


def test_unreachable_server_is_one_error():
    with socket.socket() as sock:  # bound but not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(UnreachableError, match="cannot connect"):
            run_bench(BenchConfig(port=port, clients=2, senders=1, messages=1,
                                  connect_timeout=5))


def test_a_refused_handshake_is_one_error_per_client(server_factory):
    # The server answers every hello with an error frame (password needed): each client counts
    # once, with the reason readable, not the raw frame three times over.
    server = server_factory(password="sekrit", rate_limit=0, max_per_address=0)
    result = run_bench(BenchConfig(port=server.port, clients=3, senders=0, duration=0.5))
    assert result.clients_connected == 0
    assert result.errors == 3
    assert result.error_samples == ["connect: bad_password: this server needs a password"] * 3


def test_a_sender_refused_by_the_server_is_a_refused_error(server_factory):
    server = server_factory(password="sekrit", rate_limit=0, max_per_address=0)
    with pytest.raises(RefusedError, match="bad_password: this server needs a password"):
        run_bench(BenchConfig(port=server.port, clients=2, senders=1, duration=0.5))


def test_cli_json(open_server, tmp_path):
    done = subprocess.run(
        chatkit_cmd("bench", f"127.0.0.1:{open_server.port}", "--clients", "3", "--senders",
                    "1", "--messages", "10", "--json"),
        capture_output=True, text=True, timeout=30, env=cli_env(str(tmp_path)))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["deliveries"] == 30 and data["ok"] is True
    assert data["lost"] == data["duplicated"] == data["reordered"] == 0
    assert done.stderr == ""  # no progress line without a terminal


def test_cli_human_summary_and_usage_errors(open_server, tmp_path):
    env = cli_env(str(tmp_path))
    done = subprocess.run(
        chatkit_cmd("bench", f"127.0.0.1:{open_server.port}", "--clients", "2", "--messages",
                    "3", "--rate", "100"),
        capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    assert "deliveries   6 of 6" in done.stdout and "lost 0" in done.stdout
    both = subprocess.run(chatkit_cmd("bench", "--rate", "10", "--max"), capture_output=True,
                          text=True, timeout=30, env=env)
    assert both.returncode == 2 and "exclude each other" in both.stderr
    for rate in ("inf", "nan", "1e308"):  # these reached math.ceil with a traceback
        odd = subprocess.run(chatkit_cmd("bench", "--rate", rate, "--clients", "100"),
                             capture_output=True, text=True, timeout=30, env=env)
        assert odd.returncode == 2, (rate, odd.stderr)
        assert odd.stderr.strip().splitlines() == [
            "Error: --rate must be a positive number below 10,000,000"], odd.stderr


def test_benchmark_suite_smoke(tmp_path):
    """The suite's tiny configuration end to end (Redis too when redis-server is installed),
    with two generator processes: the callbacks that read the server run in the coordinator."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--processes", "2",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=55, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    raw = list(tmp_path.glob("smoke-*.json"))
    assert len(raw) == 1
    data = json.loads(raw[0].read_text())
    matrix = [r for r in data["records"] if r["target"] == "chatkit" and "stalled" not in
              r["label"] and not r["label"].startswith("idle")]
    assert matrix and all(r["ok"] and r["deliveries"] == r["expected_deliveries"]
                          for r in matrix)
    assert all(r["server_peak_rss_kib"] > 0 and r["server_rss_connected_kib"] > 0
               for r in matrix)
    assert all(r["generator_processes"] == 2 for r in data["records"])
    assert "| target | measured | met? |" in done.stdout


def test_tls_connections_count_the_same(open_server):
    result = run_bench(BenchConfig(port=open_server.port, clients=3, senders=1, messages=10,
                                   duration=10, tls=True))
    assert result.deliveries == 30 and result.ok


def test_stalled_client_overflow_is_seen(server_factory):
    """A client that never reads is disconnected by the server once its backlog overflows."""
    server = server_factory(rate_limit=0, max_per_address=0, max_backlog=4096)
    result = run_bench(BenchConfig(port=server.port, clients=2, senders=1, messages=3000,
                                   size=1000, duration=10, stalled=1))
    assert result.deliveries == 6000 and result.ok
    assert result.stalled_disconnected == 1


# --------------------------------------------------------------------------- several processes


@pytest.fixture
def no_children() -> Iterator[None]:
    """Every worker process is gone when run_bench returns or raises."""
    assert multiprocessing.active_children() == []
    yield
    assert multiprocessing.active_children() == []


def test_processes_max_mode_counts_exactly(open_server, no_children):
    result = run_bench(BenchConfig(port=open_server.port, clients=6, senders=3, messages=20,
                                   duration=10, window=4, processes=2))
    assert result.generator_processes == 2
    assert result.clients_connected == 6
    assert result.sent == 60
    assert result.deliveries == result.expected_deliveries == 6 * 60
    assert (result.lost, result.duplicated, result.reordered, result.errors) == (0, 0, 0, 0)
    assert [(s["sender"], s["sent"]) for s in result.per_sender] == [(0, 20), (1, 20), (2, 20)]
    assert 0 <= result.latency_ms["p50"] <= result.latency_ms["p99"] <= result.latency_ms["max"]
    assert result.generator_cpu_s > 0 and result.generator_cpu_util_max >= 0
    assert result.to_dict()["config"]["processes"] == 2
    assert "generator    2 processes" in summary(result)


def test_processes_rate_mode_with_a_stalled_client(open_server, no_children):
    result = run_bench(BenchConfig(port=open_server.port, clients=4, senders=2, messages=5,
                                   rate=400, duration=10, stalled=1, processes=2))
    assert result.clients_connected == 5
    assert result.deliveries == result.expected_deliveries == 4 * 10
    assert result.ok and result.generator_processes == 2


def test_processes_stalled_client_overflow_is_seen(server_factory, no_children):
    """The stalled client lives in another worker than the sender; its drop still counts."""
    server = server_factory(rate_limit=0, max_per_address=0, max_backlog=4096)
    result = run_bench(BenchConfig(port=server.port, clients=3, senders=1, messages=3000,
                                   size=1000, duration=10, stalled=1, processes=2))
    assert result.deliveries == 9000 and result.ok
    assert result.stalled_disconnected == 1


def test_processes_unreachable_server_stops_every_worker(no_children):
    with socket.socket() as sock:  # bound but not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(UnreachableError, match="cannot connect"):
            run_bench(BenchConfig(port=port, clients=4, senders=2, messages=1,
                                  connect_timeout=5, processes=2))
    assert time.monotonic() - started < 30  # spawning two interpreters, then refused at once


def test_cli_processes_json(open_server, tmp_path):
    done = subprocess.run(
        chatkit_cmd("bench", f"127.0.0.1:{open_server.port}", "--clients", "4", "--senders",
                    "2", "--messages", "10", "--no-tls", "--processes", "2", "--json"),
        capture_output=True, text=True, timeout=60, env=cli_env(str(tmp_path)))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["deliveries"] == data["expected_deliveries"] == 80 and data["ok"] is True
    assert data["generator_processes"] == 2 and data["config"]["processes"] == 2
    assert done.stderr == ""  # workers print nothing either
    bad = subprocess.run(chatkit_cmd("bench", "--processes", "some"), capture_output=True,
                         text=True, timeout=30, env=cli_env(str(tmp_path)))
    assert bad.returncode == 2 and "--processes" in bad.stderr


@pytest.fixture
def redis_port(tmp_path) -> Iterator[int]:
    """A redis-server on 127.0.0.1 (skipped when not installed), stopped by its PID."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--protected-mode", "yes", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        assert proc.poll() is None, "redis-server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    try:
        wait_for(listening, timeout=10, message="redis-server listening")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_processes_against_redis(redis_port, no_children):
    result = run_bench(BenchConfig(port=redis_port, target="redis", clients=5, senders=3,
                                   messages=20, duration=10, stalled=1, processes=2))
    assert result.clients_connected == 6
    assert result.deliveries == result.expected_deliveries == 5 * 60
    assert result.ok and result.generator_processes == 2


@pytest.mark.parametrize("processes", [1, 2])
def test_progress_is_reported_through_the_callback(open_server, processes, no_children,
                                                   capsys):
    """The generator prints nothing itself: progress goes to on_progress, ending with done."""
    reports = []
    result = run_bench(BenchConfig(port=open_server.port, clients=4, senders=2, rate=100,
                                   messages=60, duration=10, progress=True,
                                   processes=processes),
                       on_progress=lambda *report: reports.append(report))
    assert result.ok
    phases = [phase for phase, *_ in reports]
    assert phases[-1] == "done" and phases.count("done") == 1
    assert "sending" in phases
    assert result.sent == 120 and 0 < reports[-1][1] <= 120  # workers report every 0.5 s
    assert capsys.readouterr() == ("", "")


def test_threadfloor_servers_deliver_everything_to_the_generator(tmp_path):
    """benchmarks/threadfloor.py (issue 14's floor of a threaded server): its floor servers
    speak enough pub/sub for the generator, with and without the message log, and nothing is
    lost, doubled or reordered (the script exits 1 otherwise)."""
    out = tmp_path / "floor.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "threadfloor.py"), "--rounds", "1",
         "--seconds", "1", "--servers", "floor-inline,floor-publisher+log,floor-combining",
         "--json", str(out)], capture_output=True, text=True, timeout=100, cwd=str(ROOT))
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    records = json.loads(out.read_text())
    assert {(r["cell"], r["server"]) for r in records} == {
        (cell, server) for cell in ("100c x 200/s", "100c x max")
        for server in ("floor-inline", "floor-publisher+log", "floor-combining")}
    assert all(r["deliveries"] == r["expected_deliveries"] > 0 for r in records)
    assert "| 100c x max | floor-publisher+log |" in done.stdout
