"""`chatkit serve --reuse-port`: several real server processes on one port (without
`--cluster` they are separate servers that happen to share it: each accepts some of the
connections); a clear refusal when the port's holder does not share it, or the system
cannot."""

from __future__ import annotations

import socket
import subprocess

import pytest

from chatkit.errors import ChatkitError
from chatkit.server import Server, ServerConfig

from helpers import JsonClient, ServeProcess, chatkit_cmd, cli_env

PLAIN = ["--no-discovery", "--no-tls", "--no-history"]


@pytest.fixture
def processes(tmp_path):
    started: list[ServeProcess] = []

    def start(name: str, *extra: str, port: int = 0) -> ServeProcess:
        proc = ServeProcess.start([*PLAIN, "--name", name, *extra],
                                  env_home=str(tmp_path / f"home-{name}"), port=port)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        assert proc.stop() == 0


def test_two_servers_share_one_port_and_both_accept(processes) -> None:
    first = processes("a", "--reuse-port")
    assert "shared with other --reuse-port processes" in first.banner + \
        "".join(first.proc.stdout.readline() for _ in range(6))  # type: ignore[union-attr]
    second = processes("b", "--reuse-port", port=first.port)
    assert second.port == first.port
    seen: set[str] = set()
    for attempt in range(64):  # the kernel spreads connections by a hash: both soon
        client = JsonClient(first.port, f"p{attempt}", room=None)
        try:
            assert client.welcome is not None
            seen.add(client.welcome["server"])
        finally:
            client.close()
        if seen == {"a", "b"}:
            break
    assert seen == {"a", "b"}


def test_a_port_held_without_sharing_is_refused_clearly(processes, tmp_path) -> None:
    holder = processes("plain")
    result = subprocess.run(
        chatkit_cmd("serve", "--host", "127.0.0.1", "--port", str(holder.port), *PLAIN,
                    "--reuse-port"),
        capture_output=True, text=True, env=cli_env(str(tmp_path / "late")), timeout=30)
    assert result.returncode != 0
    assert "does not share it" in result.stderr and "--reuse-port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_system_without_so_reuseport_says_so(monkeypatch) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    server = Server(ServerConfig(host="127.0.0.1", port=0, tls=False, reuse_port=True))
    with pytest.raises(ChatkitError) as caught:
        server.start()
    assert "SO_REUSEPORT" in str(caught.value) and caught.value.remedy == "drop_reuse_port"
