"""Shared fixtures: an isolated CHATKIT_HOME, a real server on 127.0.0.1:0, leak checks."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from chatkit.cli.serve import start_discovery  # noqa: E402
from chatkit.server import Server, ServerConfig  # noqa: E402

from helpers import RedisServer, ServeProcess  # noqa: E402


@pytest.fixture(autouse=True)
def chatkit_home(tmp_path, monkeypatch) -> str:
    """Every test gets its own CHATKIT_HOME, so no real home directory is touched."""
    home = tmp_path / "chatkit-home"
    home.mkdir()
    monkeypatch.setenv("CHATKIT_HOME", str(home))
    # Safety net: discovery without --broadcast probes loopback only, never real interfaces.
    monkeypatch.setenv("CHATKIT_BROADCAST", "127.255.255.255")
    monkeypatch.delenv("CHATKIT_NICK", raising=False)
    return str(home)


_real_sendto = socket.socket.sendto


def _loopback_only_sendto(sock: socket.socket, data, *args):
    """socket.sendto for tests: a datagram to anything but loopback fails the test, before it
    is sent (the namespace tests send from their own namespaces, in subprocesses)."""
    address = args[-1]
    host = address[0] if isinstance(address, tuple) else address
    try:
        loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise AssertionError(f"a test tried to send a datagram to {address!r}: only loopback "
                             "is allowed (use 127.255.255.255 or a network namespace)")
    return _real_sendto(sock, data, *args)


@pytest.fixture(autouse=True)
def datagrams_stay_on_loopback(monkeypatch) -> None:
    """Network safety, enforced: no test broadcasts or sends UDP on a real interface."""
    monkeypatch.setattr(socket.socket, "sendto", _loopback_only_sendto)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves chatkit threads running after its fixtures stopped them."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = [t for t in threading.enumerate()
                  if t not in before and t.is_alive() and t.name.startswith("chatkit")]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"threads leaked: {[t.name for t in leaked]}"


def make_server(**overrides) -> Server:
    # Tests send fast and from one address: limits are lifted here and tested on purpose.
    config = ServerConfig(host="127.0.0.1", port=0, name="test", sniff_seconds=0.1,
                          rate_limit=0, max_per_address=0)
    for key, value in overrides.items():
        setattr(config, key, value)
    return Server(config)


@pytest.fixture
def server_factory() -> Iterator:
    """Start servers with config overrides; all are stopped at teardown."""
    started: list[Server] = []

    def start(*, discovery: bool = False, discovery_port: int | None = None,
              **overrides) -> Server:
        server = make_server(**overrides)
        server.start()
        started.append(server)
        if discovery:  # wired as `chatkit serve` wires it
            assert discovery_port is not None, "tests never use the real discovery port"
            start_discovery(server, discovery_port)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory) -> Server:
    """A running server on 127.0.0.1 with an ephemeral port, discovery off."""
    return server_factory()


@pytest.fixture
def serve_process(tmp_path) -> Iterator[ServeProcess]:
    """A real `chatkit serve` subprocess on 127.0.0.1:0 (discovery off)."""
    proc = ServeProcess.start(["--no-discovery"], env_home=str(tmp_path / "serve-home"))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def irc_server(server_factory) -> Server:
    """A running server with an IRC port as well (127.0.0.1, ephemeral ports)."""
    return server_factory(irc_port=0)


@pytest.fixture
def opened() -> Iterator[list]:
    """Clients a test opens (anything with close()); all closed at teardown."""
    clients: list = []
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own on a free loopback port (skipped without one)."""
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    running = RedisServer(str(tmp_path / "redis"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def cluster(redis_server, server_factory) -> Callable[..., Server]:
    """Start nodes of one cluster (in this process, real sockets, the test's own Redis)."""

    def node(**overrides) -> Server:
        return server_factory(cluster=redis_server.url, **overrides)

    return node
