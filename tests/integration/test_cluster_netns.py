"""A cluster across real hosts: Linux network namespaces made by the test itself.

Layout (nothing is added to the machine's own network namespace; every interface below is
created inside a namespace and disappears with it):

    ns R (Redis)   br0 10.79.0.1/24 ──bridge── veth ── ns 1 (node one)  eth0 10.79.0.2/24
                                    ──bridge── veth ── ns 2 (node two)  eth0 10.79.0.3/24

Redis listens on R's address only, with a password (protected mode off: that is only safe
because the namespace's one network is the test's bridge). The nodes are real `chatkit serve
--cluster redis://:PASSWORD@10.79.0.1:6379/0 --host 0.0.0.0` processes, one given the URL by
its flag, the other by CHATKIT_SERVE_CLUSTER; clients run in the nodes' namespaces. Skipped
(with the reason) where namespaces cannot be created: not Linux, not root, no iproute2.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from netns import ip
from netns import unusable_reason as netns_unusable_reason

pytestmark = pytest.mark.timeout(90)

NET = "10.79.0"
REDIS = f"{NET}.1"
NODE_ADDRESSES = {"one": f"{NET}.2", "two": f"{NET}.3"}
CHAT_PORT = 12345

#: a JSON-mode client for inside a namespace: lines on stdin go to the server, lines from it
#: to stdout (the test reads them with a thread of its own)
CLIENT = r"""
import socket, sys, threading
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
sock.settimeout(None)
def pump():
    for line in sys.stdin:
        sock.sendall(line.encode())
threading.Thread(target=pump, daemon=True).start()
for line in sock.makefile("rb"):
    sys.stdout.write(line.decode())
    sys.stdout.flush()
"""


def _unusable_reason() -> str | None:
    reason = netns_unusable_reason()
    if reason is None and (shutil.which("redis-server") is None or
                           shutil.which("redis-cli") is None):
        reason = "redis-server is not installed (.ci/run installs it)"
    return reason


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    """Stop a process this test started (by its own PID); return its stdout and stderr."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=5)
    return out or "", err or ""


def read_banner(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """What `chatkit serve` prints when it is up (its last line says where discovery is),
    read from the pipe itself so that `communicate` gets the rest."""
    assert proc.stdout is not None
    fd, data = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while b"discovery" not in data or not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            break
        data += chunk
    return data.decode()


class NsClient:
    """CLIENT running in a namespace, its frames collected by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.frames: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="ns-client", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.frames.append(json.loads(line))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def send(self, frame: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(frame) + "\n")
        self.proc.stdin.flush()

    def expect(self, match: Callable[[dict[str, Any]], bool], timeout: float = 15
               ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = next((f for f in self.frames if match(f)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.thread.is_alive():
                    raise AssertionError(f"no such frame; got {self.frames[-5:]}")
                self.cond.wait(remaining)

    def close(self) -> None:
        stop(self.proc)
        self.thread.join(5)


@dataclass
class Lab:
    """The namespaces and the processes started in them (stopped at teardown)."""

    redis: str
    nodes: dict[str, str]  # node name -> namespace
    tmp: str
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    banners: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{REDIS}:6379/0"

    def popen(self, ns: str, args: list[str], env: dict[str, str] | None = None
              ) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env or self.env(ns))
        self.procs.append(proc)
        return proc

    def env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env["CHATKIT_HOME"] = os.path.join(self.tmp, f"home-{name}")
        env.pop("CHATKIT_NICK", None)
        env.pop("CHATKIT_SERVE_CLUSTER", None)
        return env

    def start_redis(self) -> subprocess.Popen[str]:
        conf = os.path.join(self.tmp, "redis.conf")  # the password in a file, not in `ps`
        with open(os.open(conf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
            out.write(f"bind {REDIS}\nport 6379\nprotected-mode no\nrequirepass "
                      f"{self.password}\nsave \"\"\nappendonly no\ndir {self.tmp}\n")
        proc = self.popen(self.redis, ["redis-server", conf])
        env = {**self.env("cli"), "REDISCLI_AUTH": self.password}
        for ns in self.nodes.values():  # bounded: ready, and reachable from each node's host
            for _ in range(100):
                ping = subprocess.run(["ip", "netns", "exec", ns, "redis-cli", "-h", REDIS,
                                       "-p", "6379", "ping"], capture_output=True, text=True,
                                      timeout=10, env=env)
                if ping.stdout.strip() == "PONG":
                    break
                assert proc.poll() is None, stop(proc)
                time.sleep(0.1)
            else:
                raise AssertionError(f"Redis not reachable from {ns}: {ping.stderr}")
        return proc

    def serve(self, name: str, *, url_in_env: bool) -> subprocess.Popen[str]:
        """`chatkit serve --cluster` on all of `name`'s namespace; returns after its banner."""
        env = self.env(name)
        args = [sys.executable, "-m", "chatkit", "serve", "--host", "0.0.0.0", "--port",
                str(CHAT_PORT), "--name", f"node-{name}", "--no-discovery", "--no-tls",
                "--cluster-name", "lab", "--log-level", "info"]
        if url_in_env:
            env["CHATKIT_SERVE_CLUSTER"] = self.url
        else:
            args += ["--cluster", self.url]
        proc = self.popen(self.nodes[name], args, env)
        banner = read_banner(proc)
        assert "listening on" in banner, (banner, stop(proc))
        self.banners[name] = banner
        return proc

    def client(self, name: str) -> NsClient:
        """A client in node `name`'s namespace, connected to that node's own address."""
        return NsClient(self.popen(self.nodes[name], [sys.executable, "-c", CLIENT,
                                                      NODE_ADDRESSES[name], str(CHAT_PORT)]))

    def chatkit(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.nodes[name], sys.executable, "-m",
                               "chatkit", *args], capture_output=True, text=True, timeout=30,
                              env=self.env(f"cli-{name}"))


@pytest.fixture
def lab(tmp_path) -> Iterator[Lab]:
    reason = _unusable_reason()
    if reason:
        pytest.skip(reason)
    tag = f"ckc{os.getpid() % 100000}"
    redis_ns, nodes = f"{tag}r", {"one": f"{tag}1", "two": f"{tag}2"}
    created: list[str] = []
    lab = Lab(redis_ns, nodes, str(tmp_path))
    try:
        for ns in (redis_ns, *nodes.values()):
            result = ip("netns", "add", ns, check=False)
            if result.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
            created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", redis_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", redis_ns, "addr", "add", f"{REDIS}/24", "dev", "br0")
        ip("-n", redis_ns, "link", "set", "br0", "up")
        for i, (name, ns) in enumerate(nodes.items()):
            peer = f"v{i}"
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", peer,
                "netns", redis_ns)
            ip("-n", redis_ns, "link", "set", peer, "master", "br0")
            ip("-n", redis_ns, "link", "set", peer, "up")
            ip("-n", ns, "addr", "add", f"{NODE_ADDRESSES[name]}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        yield lab
    finally:
        for proc in lab.procs:
            stop(proc)
        for ns in created:
            ip("netns", "del", ns, check=False)


def _welcome_naming_both(lab: Lab, name: str) -> dict[str, Any]:
    """The `welcome` of a client of node `name`, once it lists both nodes (a node learns of
    another within a heartbeat, 1 s)."""
    deadline = time.monotonic() + 10
    while True:
        probe = lab.client(name)
        try:
            probe.send({"type": "hello", "version": 1, "nick": f"probe{name}", "room": None})
            welcome = probe.expect(lambda f: f["type"] == "welcome")
        finally:
            probe.close()
        if len(welcome["cluster"]["nodes"]) == 2 or time.monotonic() > deadline:
            return welcome
        time.sleep(0.2)


def test_nodes_in_two_hosts_share_rooms_through_redis_in_a_third(lab: Lab) -> None:
    redis = lab.start_redis()
    one = lab.serve("one", url_in_env=False)
    two = lab.serve("two", url_in_env=True)

    # each node's welcome lists both, by their own namespace's addresses
    for name in ("one", "two"):
        view = _welcome_naming_both(lab, name)["cluster"]
        assert view["name"] == "lab"
        by_id = {n["id"]: n for n in view["nodes"]}
        assert len(by_id) == 2, view
        this = by_id.pop(view["node"])
        (other,) = by_id.values()
        other_name = "two" if name == "one" else "one"
        assert f"{NODE_ADDRESSES[name]}:{CHAT_PORT}" in this["addresses"], view
        assert f"{NODE_ADDRESSES[other_name]}:{CHAT_PORT}" in other["addresses"], view
        assert f"{NODE_ADDRESSES[name]}:{CHAT_PORT}" not in other["addresses"], view

    alice, bob = lab.client("one"), lab.client("two")
    try:
        alice.send({"type": "hello", "version": 1, "nick": "alice", "room": "lobby"})
        alice.expect(lambda f: f["type"] == "history_end")
        bob.send({"type": "hello", "version": 1, "nick": "bob", "room": "lobby"})
        alice.expect(lambda f: f["type"] == "join" and f["nick"] == "bob")
        bob.send({"type": "msg", "room": "lobby", "text": "across hosts", "ref": 1})
        echo = bob.expect(lambda f: f.get("ref") == 1)
        heard = alice.expect(lambda f: f["type"] == "message" and f["text"] == "across hosts")
        assert heard["nick"] == "bob" and heard["id"] == echo["id"]
        alice.send({"type": "msg", "room": "lobby", "text": "and back", "ref": 2})
        assert bob.expect(lambda f: f.get("text") == "and back")["nick"] == "alice"
        # a real CLI from node two's host, to node two: heard on node one
        sent = lab.chatkit("two", "send", "--host", f"{NODE_ADDRESSES['two']}:{CHAT_PORT}",
                           "--no-tls", "--nick", "cron", "from the command line")
        assert sent.returncode == 0, sent.stderr
        assert alice.expect(lambda f: f.get("text") == "from the command line")["nick"] == "cron"
    finally:
        alice.close()
        bob.close()

    # a node given a wrong password fails at start, in one line, without the password
    wrong = lab.popen(lab.nodes["one"], [
        sys.executable, "-m", "chatkit", "serve", "--host", "0.0.0.0", "--port", "0",
        "--no-discovery", "--no-tls", "--cluster",
        f"redis://:not-{lab.password}@{REDIS}:6379/0"], lab.env("wrong"))
    out, err = wrong.communicate(timeout=30)
    assert wrong.returncode != 0 and REDIS in err, (out, err)
    assert lab.password not in out + err

    # the password never appears in what the nodes print or log
    for name, proc in (("one", one), ("two", two)):
        out, err = stop(proc)
        out = lab.banners[name] + out
        assert f"messages stored in Redis at redis://:***@{REDIS}:6379/0" in out, out
        assert lab.password not in out and lab.password not in err, (out, err)
        assert "Traceback" not in err, err
    stop(redis)
