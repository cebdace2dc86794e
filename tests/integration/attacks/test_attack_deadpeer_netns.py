"""Issue 13, item 9, without application pings: a peer that vanishes from the network while
messages are in flight to it (a plain JSON client that did not say `pings`, as nc users and
older clients are) is dropped by TCP_USER_TIMEOUT, not after ~15 minutes of retransmissions.

Two Linux network namespaces made by the test, joined by a veth pair; nothing is added to the
machine's own namespace. The server runs in ns S on 10.79.0.1 (dead_peer_seconds=2), the
victim in ns C; taking C's link down makes every packet to the victim vanish. Skipped where
namespaces cannot be made (not Linux, not root, no iproute2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.timeout(60)

SERVER = r"""
import sys, time
from chatkit.server import Server, ServerConfig
sys.path.insert(0, sys.argv[1])
from helpers import JsonClient
server = Server(ServerConfig(host="10.79.0.1", port=0, name="ns", sniff_seconds=0.1,
                             rate_limit=0, max_per_address=0, tls=False, ping_idle=0,
                             dead_peer_seconds=2))
server.start()
bob = JsonClient(server.port, "bob", host="10.79.0.1")
print(server.port, flush=True)
sys.stdin.readline()  # the victim is in and its link is down
start = time.monotonic()
while "victim" in server.hub.nicks and time.monotonic() - start < 20:
    bob.send({"type": "msg", "room": "lobby", "text": "x" * 200})  # data in flight to it
    time.sleep(0.05)
print("gone" if "victim" not in server.hub.nicks else "still there",
      round(time.monotonic() - start, 1), flush=True)
bob.close()
server.stop()
"""

VICTIM = r"""
import json, socket, sys
sock = socket.create_connection(("10.79.0.1", int(sys.argv[1])), timeout=5)
sock.sendall(json.dumps({"type": "hello", "version": 1, "nick": "victim"}).encode() + b"\n")
data = b""
while b"history_end" not in data:
    chunk = sock.recv(65536)
    if not chunk:
        sys.exit("closed")
    data += chunk
print("in", flush=True)
sys.stdin.readline()  # hold the socket open, reading nothing, until the test is done
"""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need Linux, root and iproute2")
    s, c = f"ckdp-s-{os.getpid()}", f"ckdp-c-{os.getpid()}"
    made: list[str] = []
    try:
        for ns in (s, c):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", s, "link", "add", "s0", "type", "veth", "peer", "name", "c0", "netns", c)
        _ip("-n", s, "addr", "add", "10.79.0.1/24", "dev", "s0")
        _ip("-n", c, "addr", "add", "10.79.0.2/24", "dev", "c0")
        _ip("-n", s, "link", "set", "s0", "up")
        _ip("-n", c, "link", "set", "c0", "up")
        yield s, c
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _start(ns: str, code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_vanished_peer_without_pings_is_dropped_by_tcp_user_timeout(namespaces):
    s, c = namespaces
    tests_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    server = _start(s, SERVER, tests_dir)
    victim = None
    try:
        assert server.stdout is not None and server.stdin is not None
        port = server.stdout.readline().strip()
        assert port.isdigit(), server.stderr.read() if server.stderr else port
        victim = _start(c, VICTIM, port)
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "in"
        _ip("-n", c, "link", "set", "c0", "down")  # the victim vanishes from the network
        started = time.monotonic()
        server.stdin.write("go\n")
        server.stdin.flush()
        verdict, seconds = server.stdout.readline().split()
        assert verdict == "gone", f"still a member after {seconds} s"
        assert time.monotonic() - started < 15
    finally:
        for proc in (victim, server):
            if proc is not None:
                try:
                    proc.communicate(input="\n", timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate(timeout=5)
