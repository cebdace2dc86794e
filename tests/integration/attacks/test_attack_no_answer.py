"""Issue 13, item 10 (server timeouts): a server that accepts a connection and then says
nothing. Before: a server frozen with SIGSTOP gave "TLS handshake timed out (is it a chatkit
server with TLS?...)", and a TLS endpoint that never answers `hello` gave `internal error:
TimeoutError`, exit status 1. Now both are one honest line and exit status 3 (unreachable)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from chatkit.tls.certificates import ensure_certificate, server_context

from helpers import ServeProcess, chatkit_cmd, cli_env


def _send(port: int, home: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        chatkit_cmd("send", "--host", f"127.0.0.1:{port}", "--nick", "ci", "hi"),
        stdin=subprocess.DEVNULL, text=True, capture_output=True, timeout=40,
        env=cli_env(home))


def _assert_no_answer(result: subprocess.CompletedProcess[str], port: int, unanswered: str
                      ) -> None:
    lines = [line for line in result.stderr.splitlines() if "pinned" not in line]
    assert result.returncode == 3, result.stderr
    assert len(lines) == 1, result.stderr
    assert f"no answer from 127.0.0.1:{port} within 5 s: it accepted the connection but " \
           f"never answered {unanswered}" in lines[0]
    assert "internal error" not in lines[0] and "timed out" not in lines[0]


def test_a_server_frozen_by_sigstop_is_no_answer_with_status_3(tmp_path):
    serve = ServeProcess.start(["--no-discovery", "--no-history"], str(tmp_path / "serve"))
    try:
        os.kill(serve.proc.pid, signal.SIGSTOP)
        result = _send(serve.port, str(tmp_path / "client"))
        _assert_no_answer(result, serve.port, "the TLS handshake")
    finally:
        os.kill(serve.proc.pid, signal.SIGCONT)
        serve.stop()


@pytest.fixture
def silent_tls_endpoint(tmp_path) -> Iterator[int]:
    """A TLS endpoint on 127.0.0.1 that completes the handshake and then never answers."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key, "silent", ["127.0.0.1"])
    context, _ = server_context(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    done = threading.Event()

    def serve_one() -> None:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        with raw:
            raw.settimeout(30)
            try:
                with context.wrap_socket(raw, server_side=True) as tls:
                    deadline = time.monotonic() + 30
                    while not done.is_set() and time.monotonic() < deadline:
                        if not tls.recv(4096):  # read `hello`, answer nothing
                            return
            except (OSError, ssl.SSLError):
                return

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        listener.close()
        thread.join(35)


def test_a_tls_endpoint_that_never_answers_hello_is_no_answer_with_status_3(
        silent_tls_endpoint, tmp_path):
    result = _send(silent_tls_endpoint, str(tmp_path / "client"))
    _assert_no_answer(result, silent_tls_endpoint, "`hello`")
