"""Discovery between real hosts: Linux network namespaces made by the test itself.

Layout (nothing is added to the machine's own network namespace; every interface below is
created inside a namespace and disappears with it):

    ns A (server)  br0 10.77.0.1/24 ──bridge── veth ── ns B (client)  eth0 10.77.0.2/24
                   vc  10.78.0.1/24 ────────── veth ── ns C (client)  eth0 10.78.0.2/24

Inside the namespaces the real defaults are used: `chatkit serve` on 0.0.0.0 and `chatkit
discover` with no `--broadcast`, i.e. the broadcast address of each namespace interface.
Skipped (with the reason) where namespaces cannot be created: not Linux, not root, no iproute2.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from netns import ip
from netns import unusable_reason as netns_unusable_reason

pytestmark = pytest.mark.timeout(60)

NETS = {"b": "10.77.0", "c": "10.78.0"}


@dataclass
class Lab:
    """Three namespaces; `procs` are stopped at teardown (only processes this test started)."""

    a: str
    b: str
    c: str
    home: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def command(self, ns: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", ns, sys.executable, "-m", "chatkit", *args]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CHATKIT_HOME"] = self.home
        env.pop("CHATKIT_NICK", None)
        # Every Lab process runs under `ip netns exec` in this test's own namespaces, whose
        # only interfaces are the test's veths and bridge: there, real broadcast is the point.
        env.pop("CHATKIT_BROADCAST", None)
        return env

    def run(self, ns: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(ns, *args), capture_output=True, text=True,
                              timeout=timeout, env=self.env())

    def start(self, ns: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.command(ns, *args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env())
        self.procs.append(proc)
        return proc

    def serve(self, *args: str) -> subprocess.Popen[str]:
        """`chatkit serve` in namespace A; returns once its banner was printed."""
        proc = self.start(self.a, "serve", "--name", "labserver", "--log-level", "warning",
                          *args)
        banner = read_line(proc, 15)
        assert "listening on" in banner, (banner, stop(proc))
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            stop(proc)


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """One stdout line of `proc`, or "" at EOF/deadline (never blocks past `timeout`)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    """Stop a process we started (by its own PID); return its stderr for diagnostics."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=5)
    return err or ""


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory) -> Iterator[tuple[str, str, str]]:
    reason = netns_unusable_reason()
    if reason:
        pytest.skip(reason)
    tag = f"ckd{os.getpid() % 100000}"
    a, b, c = f"{tag}a", f"{tag}b", f"{tag}c"
    created: list[str] = []
    try:
        for ns in (a, b, c):
            result = ip("netns", "add", ns, check=False)
            if result.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
            created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        # A: a bridge for the 10.77.0.0/24 network, B plugged into it
        ip("-n", a, "link", "add", "br0", "type", "bridge")
        ip("-n", a, "addr", "add", "10.77.0.1/24", "brd", "+", "dev", "br0")
        ip("-n", a, "link", "set", "br0", "up")
        ip("-n", b, "link", "add", "eth0", "type", "veth", "peer", "name", "vb", "netns", a)
        ip("-n", a, "link", "set", "vb", "master", "br0")
        ip("-n", a, "link", "set", "vb", "up")
        ip("-n", b, "addr", "add", "10.77.0.2/24", "brd", "+", "dev", "eth0")
        ip("-n", b, "link", "set", "eth0", "up")
        # C: a second, separate network 10.78.0.0/24 (a direct veth to A)
        ip("-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "vc", "netns", a)
        ip("-n", a, "addr", "add", "10.78.0.1/24", "brd", "+", "dev", "vc")
        ip("-n", a, "link", "set", "vc", "up")
        ip("-n", c, "addr", "add", "10.78.0.2/24", "brd", "+", "dev", "eth0")
        ip("-n", c, "link", "set", "eth0", "up")
        for ns, peer in ((b, "10.77.0.1"), (c, "10.78.0.1")):
            _wait_reachable(ns, peer)
        yield a, b, c
    finally:
        for ns in created:
            ip("netns", "del", ns, check=False)


def _wait_reachable(ns: str, peer: str) -> None:
    """Links come up asynchronously; wait (bounded) until `peer` answers a ping."""
    if shutil.which("ping") is None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # no ping: wait for the link state instead
            state = ip("-n", ns, "-br", "link", "show", "eth0").stdout
            if " UP " in state or "LOWER_UP" in state:
                return
            time.sleep(0.05)
        return
    for _ in range(20):
        if subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", peer],
                          capture_output=True, timeout=5).returncode == 0:
            return
    raise RuntimeError(f"{peer} not reachable from {ns}")


@pytest.fixture
def lab(namespaces, tmp_path) -> Iterator[Lab]:
    a, b, c = namespaces
    home = tmp_path / "home"
    home.mkdir()
    lab = Lab(a, b, c, str(home))
    try:
        yield lab
    finally:
        lab.stop_all()


def discover_json(lab: Lab, ns: str, *args: str) -> tuple[int, list[dict]]:
    result = lab.run(ns, "discover", "--json", "--timeout", "1", *args)
    assert result.returncode in (0, 6), result.stderr
    return result.returncode, json.loads(result.stdout)["servers"]


def test_server_on_all_interfaces_is_found_from_each_network_and_reached(lab: Lab) -> None:
    server = lab.serve()  # the defaults: 0.0.0.0, chat port 12345, discovery port 12345
    status, from_b = discover_json(lab, lab.b)
    assert status == 0
    assert [(s["name"], s["host"], s["port"]) for s in from_b] == [
        ("labserver", "10.77.0.1", 12345)]
    status, from_c = discover_json(lab, lab.c)
    assert [(s["name"], s["host"]) for s in from_c] == [("labserver", "10.78.0.1")]
    assert from_b[0]["instance"] == from_c[0]["instance"]

    table = lab.run(lab.b, "discover", "--timeout", "1")
    assert table.returncode == 0 and "10.77.0.1:12345" in table.stdout, table.stderr

    sent = lab.run(lab.b, "send", "--host", from_b[0]["host"],
                   "--nick", "bob", "hello from namespace b")
    assert sent.returncode == 0, sent.stderr

    # No address at all: join and send find the server by themselves, from either network.
    joined = subprocess.run(lab.command(lab.b, "join", "--nick", "bob"), input="hi, found you\n",
                            capture_output=True, text=True, timeout=30, env=lab.env())
    assert joined.returncode == 0, joined.stderr
    assert "found 'labserver' at 10.77.0.1:12345" in joined.stderr
    assert "<bob> hi, found you" in joined.stdout
    from_c_send = lab.run(lab.c, "send", "--nick", "carol", "hello from c")
    assert from_c_send.returncode == 0, from_c_send.stderr
    history = lab.run(lab.a, "history", "--json")
    texts = [json.loads(line)["text"] for line in history.stdout.splitlines()]
    assert texts == ["hello from namespace b", "hi, found you", "hello from c"]
    assert "Traceback" not in stop(server)


def test_server_bound_to_one_address_is_visible_only_on_its_network(lab: Lab) -> None:
    lab.serve("--host", "10.77.0.1")
    status, found = discover_json(lab, lab.b)
    assert [(s["host"], s["port"]) for s in found] == [("10.77.0.1", 12345)]
    # C's network is served by A too, but the server does not listen there: silence
    status, found = discover_json(lab, lab.c)
    assert (status, found) == (6, [])
    status, found = discover_json(lab, lab.c, "--broadcast", "10.78.0.1")
    assert (status, found) == (6, [])
    diag = lab.run(lab.c, "discover", "--diagnose", "--timeout", "1")
    assert diag.returncode == 6
    assert "10.78.0.255" in diag.stdout and "own probe came back" in diag.stdout
    assert "chatkit join" in diag.stdout


def test_loopback_server_is_visible_only_on_its_own_host(lab: Lab) -> None:
    lab.serve("--host", "127.0.0.1")
    status, found = discover_json(lab, lab.b)
    assert (status, found) == (6, [])
    status, found = discover_json(lab, lab.a)  # same host: probes every A network + loopback
    assert [(s["host"], s["port"]) for s in found] == [("127.0.0.1", 12345)]


def test_no_discovery_server_stays_silent(lab: Lab) -> None:
    lab.serve("--no-discovery")
    status, found = discover_json(lab, lab.b)
    assert (status, found) == (6, [])


def test_watch_sees_a_server_start_and_stop_across_hosts(lab: Lab) -> None:
    watcher = lab.start(lab.b, "discover", "--watch", "--json")
    server = lab.serve()
    appear = json.loads(read_line(watcher, 10) or "{}")
    assert appear.get("event") == "appear", stop(watcher, signal.SIGINT)
    assert appear["server"]["host"] == "10.77.0.1"
    stop(server)
    leave = json.loads(read_line(watcher, 10) or "{}")
    assert (leave.get("event"), leave.get("reason")) == ("leave", "stopped")
    stop(watcher, signal.SIGINT)
    assert watcher.returncode == 0
