"""The client's connection against hostile or mismatched servers on 127.0.0.1: a malformed
frame is dropped on arrival and the next good one still arrives; a TLS client meeting a plain
server is told (by the CLI) which option to change."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from chatkit.cli import cli
from chatkit.client.connection import Connection
from chatkit.client.session import ChatSession
from chatkit.errors import ProtocolError, UnreachableError

from helpers import wait_for

TS = 1_764_000_000.0
WELCOME = {"type": "welcome", "version": 1, "server": "fake", "nick": "alice",
           "commands": [], "limits": {"max_frame": 8192, "max_text": 2000, "max_nick": 24,
                                      "max_room": 32}, "id": 1, "ts": TS}
MALFORMED = [
    {"type": "message", "room": "lobby", "text": "no nick", "action": False, "id": 2, "ts": TS},
    {"type": "who", "room": None, "users": [{"nick": 5, "rooms": []}], "id": 3, "ts": TS},
    {"type": "joined", "room": "lobby", "topic": None, "members": "x", "id": 4, "ts": TS},
    {"type": "topic", "room": "lobby", "text": "t", "history": True, "id": 5, "ts": TS},
]
GOOD = {"type": "message", "room": "lobby", "nick": "bob", "text": "still here",
        "action": False, "id": 6, "ts": TS}


class FakeServer:
    """One plain-TCP connection on 127.0.0.1: reads the hello, sends `frames`, then waits
    (bounded) until the client hangs up."""

    def __init__(self, frames: list[dict]) -> None:
        self.frames = frames
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, name="fake-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(65536)  # the hello
                conn.sendall(b"".join(json.dumps(f).encode() + b"\n" for f in self.frames))
                while conn.recv(65536):  # until the client hangs up (or 10 s of silence)
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(15)


@pytest.fixture
def fake_server() -> Iterator:
    servers: list[FakeServer] = []

    def start(frames: list[dict]) -> FakeServer:
        servers.append(FakeServer(frames))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_malformed_frames_are_dropped_and_the_next_good_one_arrives(fake_server, caplog):
    server = fake_server([WELCOME, *MALFORMED, GOOD])
    caplog.set_level(logging.DEBUG, logger="chatkit.client")
    conn = Connection.open("127.0.0.1", server.port, "alice", tls=False, timeout=5)
    try:
        assert conn.recv(5) == GOOD
    finally:
        conn.close()
    dropped = [r for r in caplog.records if "dropped a malformed frame" in r.getMessage()]
    assert len(dropped) == len(MALFORMED)


def test_a_session_survives_malformed_frames(fake_server):
    server = fake_server([WELCOME, *MALFORMED, GOOD])
    events: list[dict] = []
    session = ChatSession("127.0.0.1", server.port, "alice", on_event=events.append,
                          tls=False, max_attempts=1)
    session.connect()
    try:
        wait_for(lambda: any(e.get("text") == "still here" for e in events),
                 message="the good frame after the bad ones")
        assert session.state == "connected"
        assert session.last_message_ids == {"lobby": 6}
        assert [e["type"] for e in events] == ["welcome", "message"]  # nothing else got out
    finally:
        session.quit()


def test_a_malformed_welcome_is_a_protocol_error_not_a_wait(fake_server):
    server = fake_server([{**WELCOME, "nick": 5}])
    with pytest.raises(ProtocolError, match="does not speak the chatkit protocol"):
        Connection.open("127.0.0.1", server.port, "alice", tls=False, timeout=5)


def test_tls_to_a_plain_server_says_what_failed_and_the_cli_names_the_flag(server_factory):
    server = server_factory(tls=False)
    with pytest.raises(UnreachableError) as caught:
        Connection.open("127.0.0.1", server.port, "alice", timeout=3)
    core = str(caught.value)
    assert "TLS handshake with 127.0.0.1 failed" in core and "--" not in core
    result = CliRunner().invoke(cli, ["send", "--host", f"127.0.0.1:{server.port}",
                                      "--nick", "alice", "hi"], prog_name="chatkit")
    assert result.exit_code == 3
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: TLS handshake with 127.0.0.1 failed: ")
    assert error.endswith(" (is it a chatkit server with TLS? an older or --no-tls server "
                          "needs --no-tls)")
