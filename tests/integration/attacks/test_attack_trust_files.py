"""Issue 13, item 10 (trust, key and password parts): a TLS service that is not chatkit is
never pinned; a server key other users can read is refused; a password where others can read
it (command line, world-readable file) is warned about on stderr. Loopback only."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatkit.client import Connection
from chatkit.errors import ChatkitError
from chatkit.paths import known_servers_file
from chatkit.tls import KnownServers, ensure_certificate, server_context

from helpers import ServeProcess, chatkit_cmd, cli_env, free_udp_port

PASSWORD = "the secret"
EXPOSED = "warning: --password on the command line"


@pytest.fixture
def not_chatkit(tmp_path) -> Iterator[int]:
    """A TLS service that answers like a web server and closes (one connection, bounded)."""
    cert, key = tmp_path / "web-cert.pem", tmp_path / "web-key.pem"
    ensure_certificate(cert, key, "web", ["127.0.0.1"])
    context, _ = server_context(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve_once() -> None:
        try:
            raw, _ = listener.accept()
            raw.settimeout(5)
            with context.wrap_socket(raw, server_side=True) as conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve_once, name="not-chatkit", daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    thread.join(10)
    listener.close()


def test_a_tls_service_that_is_not_chatkit_is_not_pinned(not_chatkit):
    known = KnownServers(known_servers_file())
    with pytest.raises(ChatkitError):
        Connection.open("127.0.0.1", not_chatkit, "alice", known_servers=known, timeout=5)
    assert known.all() == {}  # pinned only after a `welcome`


def test_a_chatkit_server_is_pinned_after_its_welcome(server):
    known = KnownServers(known_servers_file())
    conn = Connection.open("127.0.0.1", server.port, "alice", known_servers=known)
    try:
        assert conn.newly_pinned and conn.welcome["type"] == "welcome"
        assert known.get(f"127.0.0.1:{server.port}") == server.fingerprint
    finally:
        conn.close()


def test_a_server_key_other_users_can_read_is_refused(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key, "host", ["127.0.0.1"])
    os.chmod(key, 0o644)
    with pytest.raises(ChatkitError) as caught:
        server_context(cert, key)
    assert "mode 0644" in str(caught.value) and f"chmod 600 {key}" in str(caught.value)
    os.chmod(key, 0o640)  # a key shared with a service group is fine
    server_context(cert, key)


def test_serve_refuses_its_own_key_made_world_readable(tmp_path):
    home = str(tmp_path / "serve-home")
    port = str(free_udp_port())
    first = ServeProcess.start(["--discovery-port", port], env_home=home)
    assert first.stop() == 0
    keys = list(Path(home).rglob("*key*.pem"))
    assert len(keys) == 1, keys
    os.chmod(keys[0], 0o644)
    result = subprocess.run(chatkit_cmd("serve", "--host", "127.0.0.1", "--port", "0",
                                        "--no-discovery"),
                            capture_output=True, text=True, timeout=30, env=cli_env(home))
    assert result.returncode == 1
    assert "accessible to other users (mode 0644)" in result.stderr
    assert "Traceback" not in result.stderr


def send(home: str, port: int, *extra: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(chatkit_cmd("send", "--host", f"127.0.0.1:{port}", "--nick", "ci",
                                      *extra, "hi"),
                          capture_output=True, text=True, timeout=30,
                          env=cli_env(home, **env), stdin=subprocess.DEVNULL)


def test_password_on_the_command_line_warns_once(server_factory, chatkit_home):
    server = server_factory(password=PASSWORD)
    result = send(chatkit_home, server.port, "--password", PASSWORD)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(EXPOSED) == 1
    quiet = send(chatkit_home, server.port, CHATKIT_PASSWORD=PASSWORD)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr


def test_world_readable_password_file_warns(server_factory, chatkit_home, tmp_path):
    server = server_factory(password=PASSWORD)
    secret = tmp_path / "password.txt"
    secret.write_text(PASSWORD + "\n")
    os.chmod(secret, 0o644)
    result = send(chatkit_home, server.port, "--password-file", str(secret))
    assert result.returncode == 0, result.stderr
    assert f"--password-file {secret} is readable by every user (mode 0644)" in result.stderr
    os.chmod(secret, 0o600)
    quiet = send(chatkit_home, server.port, "--password-file", str(secret))
    assert quiet.returncode == 0 and "warning" not in quiet.stderr


def test_serve_warns_about_a_password_on_its_command_line(tmp_path):
    serve = ServeProcess.start(["--password", PASSWORD, "--discovery-port",
                                str(free_udp_port())], env_home=str(tmp_path / "home"))
    serve.proc.terminate()
    _, err = serve.proc.communicate(timeout=10)
    assert err.count(EXPOSED) == 1, err


def test_join_warns_about_a_password_on_its_command_line(server_factory, chatkit_home):
    server = server_factory(password=PASSWORD)
    result = subprocess.run(chatkit_cmd("join", f"127.0.0.1:{server.port}", "--nick", "pipe",
                                        "--password", PASSWORD),
                            input="", capture_output=True, text=True, timeout=30,
                            env=cli_env(chatkit_home))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(EXPOSED) == 1
