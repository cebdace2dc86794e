"""`chatkit send` and `chatkit join` without a host find the server by discovery (loopback only:
servers bound to 127.0.0.1, probes to 127.255.255.255 on a port of the test's own)."""

from __future__ import annotations

import subprocess

import pytest

from chatkit.discovery import DiscoveryResponder
from chatkit.server import Server

from helpers import JsonClient, ServeProcess, chatkit_cmd, cli_env, free_udp_port

LOOPBACK_BROADCAST = "127.255.255.255"


@pytest.fixture
def discovery_port() -> int:
    return free_udp_port()


@pytest.fixture
def home(tmp_path) -> str:
    return str(tmp_path / "client-home")


def run(home: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(chatkit_cmd(*args), input=stdin, capture_output=True, text=True,
                          env=cli_env(home), timeout=30)


def discovered(*args: str, port: int) -> list[str]:
    return [*args, "--broadcast", LOOPBACK_BROADCAST, "--discovery-port", str(port)]


def start_serve(tmp_path, name: str, discovery_port: int) -> ServeProcess:
    return ServeProcess.start(["--name", name, "--discovery-port", str(discovery_port)],
                              env_home=str(tmp_path / f"home-{name}"))


def test_send_without_host_finds_the_only_server(tmp_path, home, discovery_port):
    serve = start_serve(tmp_path, "office", discovery_port)
    listener = JsonClient(serve.port, "listener")
    try:
        result = run(home, *discovered("send", "--nick", "bot", "found you", port=discovery_port))
        assert result.returncode == 0, result.stderr
        assert "found 'office' at 127.0.0.1:" in result.stderr
        assert listener.expect("message", nick="bot")["text"] == "found you"
    finally:
        listener.close()
        assert serve.stop() == 0


def test_piped_join_without_host(tmp_path, home, discovery_port):
    serve = start_serve(tmp_path, "office", discovery_port)
    listener = JsonClient(serve.port, "listener")
    try:
        result = run(home, *discovered("join", "--nick", "piper", port=discovery_port),
                     stdin="hello from a pipe\n")
        assert result.returncode == 0, result.stderr
        assert listener.expect("message", nick="piper")["text"] == "hello from a pipe"
    finally:
        listener.close()
        serve.stop()


def test_several_servers_need_a_name(tmp_path, home, discovery_port):
    first = start_serve(tmp_path, "alpha", discovery_port)
    second = start_serve(tmp_path, "beta", discovery_port)
    listener = JsonClient(second.port, "listener")
    try:
        ambiguous = run(home, *discovered("send", "--nick", "bot", "x", port=discovery_port))
        assert ambiguous.returncode == 2
        assert "2 servers answered" in ambiguous.stderr and "--server NAME" in ambiguous.stderr
        assert "alpha" in ambiguous.stderr and "beta" in ambiguous.stderr
        chosen = run(home, *discovered("send", "--server", "BETA", "--nick", "bot", "to beta",
                                       port=discovery_port))
        assert chosen.returncode == 0, chosen.stderr
        assert listener.expect("message", nick="bot")["text"] == "to beta"
        missing = run(home, *discovered("send", "--server", "gamma", "--nick", "bot", "x",
                                        port=discovery_port))
        assert missing.returncode == 6
        assert "no server named 'gamma'" in missing.stderr
        assert "Traceback" not in missing.stderr
    finally:
        listener.close()
        first.stop()
        second.stop()


def test_nothing_found_is_exit_6_with_advice(home, discovery_port):
    result = run(home, *discovered("send", "--nick", "bot", "x", port=discovery_port))
    assert result.returncode == 6
    assert "chatkit discover --diagnose" in result.stderr
    assert "Traceback" not in result.stderr


def test_spoofed_announcement_with_another_fingerprint_is_refused(server, home,
                                                                  discovery_port):
    """A device announcing the real server's address with a fingerprint of its own: the
    client sees the real certificate does not match what discovery promised, and refuses."""
    def spoofed() -> dict[str, object]:
        info = server.info()
        return {**info, "name": "office", "fingerprint": "SHA256:" + "A" * 43}

    impostor = DiscoveryResponder(bind_host="127.0.0.1", chat_port=server.port,
                                  discovery_port=discovery_port, info=spoofed)
    impostor.start()
    try:
        result = run(home, *discovered("send", "--nick", "bot", "x", port=discovery_port))
    finally:
        impostor.stop()
    assert result.returncode == 7  # the identity status, not an ordinary refusal
    assert "discovery announced" in result.stderr and "Not connecting" in result.stderr
    assert isinstance(server, Server)


def test_server_names_complete_in_the_shell(tmp_path, home, discovery_port):
    serve = start_serve(tmp_path, "office", discovery_port)
    try:
        words = ["chatkit", "send", "--broadcast", LOOPBACK_BROADCAST, "--discovery-port",
                 str(discovery_port), "--server", "of"]
        env = {**cli_env(home), "_CHATKIT_COMPLETE": "bash_complete",
               "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
        result = subprocess.run(chatkit_cmd(), capture_output=True, text=True, env=env,
                                timeout=30)
        assert result.returncode == 0, result.stderr
        assert "plain,office" in result.stdout.splitlines()
    finally:
        serve.stop()
