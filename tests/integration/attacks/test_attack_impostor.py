"""Issue 13, item 3: a discovery impostor (another port, the real server's name and even its
instance id, its own certificate) is refused before anything is sent to it, and the picker
tells identical names apart. Loopback only: servers on 127.0.0.1, probes to 127.255.255.255
on a discovery port of the test's own."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatkit.discovery import DiscoveryResponder, find_server
from chatkit.paths import known_servers_file
from chatkit.tls import KnownServers, ensure_certificate, server_context

from helpers import chatkit_cmd, cli_env, free_udp_port

BROADCAST = "127.255.255.255"


class TlsRecorder:
    """A TLS listener on 127.0.0.1 with its own certificate that records every byte a client
    sends after the handshake (a hello, a password); at most a few connections, bounded."""

    def __init__(self, directory: Path, reply: bytes = b"") -> None:
        cert, key = directory / "impostor-cert.pem", directory / "impostor-key.pem"
        ensure_certificate(cert, key, "impostor", ["127.0.0.1"])
        self.context, self.fingerprint = server_context(cert, key)
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.received = b""
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.connections < 5:
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            raw.settimeout(2.0)
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    if self.reply:
                        conn.sendall(self.reply)
                    for _ in range(100):
                        data = conn.recv(65536)
                        if not data:
                            break
                        self.received += data
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@pytest.fixture
def discovery_port() -> int:
    return free_udp_port()


@pytest.fixture
def responders(discovery_port) -> Iterator[Callable[[Callable[[], dict[str, Any]]],
                                                     DiscoveryResponder]]:
    started: list[DiscoveryResponder] = []

    def start(info: Callable[[], dict[str, Any]]) -> DiscoveryResponder:
        responder = DiscoveryResponder(bind_host="127.0.0.1", chat_port=int(info()["port"]),
                                       discovery_port=discovery_port, info=info)
        responder.start()
        started.append(responder)
        return responder

    yield start
    for responder in started:
        responder.stop()


@pytest.fixture
def recorder(tmp_path) -> Iterator[TlsRecorder]:
    impostor = TlsRecorder(tmp_path)
    yield impostor
    impostor.close()


def send_by_name(home: str, discovery_port: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        chatkit_cmd("send", "--server", "office", "--broadcast", BROADCAST, "--discovery-port",
                    str(discovery_port), "--nick", "bot", *extra, "hello"),
        capture_output=True, text=True, timeout=30,
        env=cli_env(home, CHATKIT_PASSWORD="the secret"))


def pin_the_real_office(server, responders, home, discovery_port) -> DiscoveryResponder:
    real = responders(lambda: {**server.info(), "name": "office"})
    result = send_by_name(home, discovery_port)
    assert result.returncode == 0, result.stderr
    assert KnownServers(known_servers_file()).get(f"127.0.0.1:{server.port}") \
        == server.fingerprint
    return real


def test_impostor_with_the_pinned_name_and_instance_is_refused_before_hello(
        server_factory, responders, recorder, chatkit_home, discovery_port):
    server = server_factory(password="the secret")
    pin_the_real_office(server, responders, chatkit_home, discovery_port).stop()
    responders(lambda: {**server.info(), "name": "office", "port": recorder.port,
                        "fingerprint": recorder.fingerprint})
    result = send_by_name(chatkit_home, discovery_port)
    assert result.returncode == 7, result.stderr  # the identity status
    assert "SERVER IDENTITY CHANGED for server 'office'" in result.stderr
    assert server.fingerprint in result.stderr and recorder.fingerprint in result.stderr
    assert "chatkit trust --forget office" in result.stderr
    assert recorder.received == b""  # no hello, no password
    assert KnownServers(known_servers_file()).get(f"127.0.0.1:{recorder.port}") is None


def test_impostor_announcing_no_tls_under_a_pinned_name_is_refused(
        server_factory, responders, recorder, chatkit_home, discovery_port):
    server = server_factory(password="the secret")
    pin_the_real_office(server, responders, chatkit_home, discovery_port).stop()
    responders(lambda: {**server.info(), "name": "office", "port": recorder.port,
                        "tls": False, "fingerprint": None})
    result = send_by_name(chatkit_home, discovery_port)
    assert result.returncode == 7, result.stderr
    assert "announces no certificate" in result.stderr
    assert recorder.received == b"" and recorder.connections == 0


def test_forgetting_the_name_lets_a_new_certificate_be_pinned(
        server_factory, responders, tmp_path, chatkit_home, discovery_port):
    server = server_factory()
    pin_the_real_office(server, responders, chatkit_home, discovery_port).stop()
    cert, key = tmp_path / "new-cert.pem", tmp_path / "new-key.pem"
    ensure_certificate(cert, key, "renewed", ["127.0.0.1"])
    renewed = server_factory(tls_cert=str(cert), tls_key=str(key))
    responders(lambda: {**renewed.info(), "name": "office"})
    assert send_by_name(chatkit_home, discovery_port).returncode == 7
    forget = subprocess.run(chatkit_cmd("trust", "--forget", "office"), capture_output=True,
                            text=True, timeout=30, env=cli_env(chatkit_home))
    assert forget.returncode == 0, forget.stderr
    result = send_by_name(chatkit_home, discovery_port)
    assert result.returncode == 0, result.stderr


def test_the_real_server_at_a_new_port_with_its_pinned_certificate_connects(
        server_factory, responders, chatkit_home, discovery_port):
    server = server_factory()
    pin_the_real_office(server, responders, chatkit_home, discovery_port).stop()
    moved = server_factory()  # same certificate (same home), another port
    assert moved.fingerprint == server.fingerprint and moved.port != server.port
    responders(lambda: {**moved.info(), "name": "office"})
    result = send_by_name(chatkit_home, discovery_port)
    assert result.returncode == 0, result.stderr


def test_a_reply_copying_the_instance_id_is_listed_apart_with_its_fingerprint(
        server, responders, recorder, chatkit_home, discovery_port):
    responders(lambda: {**server.info(), "name": "office"})
    responders(lambda: {**server.info(), "name": "office", "port": recorder.port,
                        "fingerprint": recorder.fingerprint})
    found: list = []
    for _ in range(3):  # UDP: a reply may be lost under load; bounded
        found = find_server("office", broadcast=[BROADCAST], discovery_port=discovery_port)
        if len(found) == 2:
            break
    assert sorted(s.port for s in found) == sorted([server.port, recorder.port])
    result = send_by_name(chatkit_home, discovery_port)
    assert result.returncode == 2, result.stderr  # two answered: the user must choose
    for port, fingerprint in ((server.port, server.fingerprint),
                              (recorder.port, recorder.fingerprint)):
        assert f"127.0.0.1:{port}, {fingerprint[:15]}" in result.stderr
    assert recorder.connections == 0
