"""The reconnecting session against a real server on 127.0.0.1, stopped and started again."""

from __future__ import annotations

import random
import threading
import time

import pytest

from chatkit.client.session import ChatSession, Refused, SessionEnded
from chatkit.errors import RefusedError, UnreachableError

from helpers import JsonClient, Relay, wait_for


class Recorder:
    """Collects the events a session hands on (from its reader thread)."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, frame: dict) -> None:
        with self.lock:
            self.events.append(frame)

    def find(self, kind: str, **fields) -> dict | None:
        with self.lock:
            for frame in self.events:
                if frame.get("type") == kind and all(frame.get(k) == v
                                                     for k, v in fields.items()):
                    return frame
        return None

    def wait(self, kind: str, **fields) -> dict:
        return wait_for(lambda: self.find(kind, **fields), message=f"{kind} {fields}")


@pytest.fixture
def make_session():
    sessions: list[ChatSession] = []

    def make(port: int, nick: str = "alice", **options) -> tuple[ChatSession, Recorder]:
        recorder = Recorder()
        options.setdefault("backoff_initial", 0.05)
        options.setdefault("backoff_max", 0.3)
        session = ChatSession("127.0.0.1", port, nick, on_event=recorder,
                              rng=random.Random(1), **options)
        sessions.append(session)
        session.connect()
        return session, recorder

    yield make
    for session in sessions:
        session.quit()


def test_connects_joins_and_tracks_members(server, make_session):
    session, events = make_session(server.port)
    events.wait("joined", room="lobby")
    assert session.current_room == "lobby" and session.server_name == "test"
    bob = JsonClient(server.port, "bob")
    try:
        wait_for(lambda: "bob" in session.members(), message="bob in members")
        assert session.nicks() == ["bob"]  # never ourselves
        bob.send({"type": "msg", "room": "lobby", "text": "hi alice"})
        events.wait("message", nick="bob", text="hi alice")
        assert session.last_message_ids["lobby"] == events.find("message", nick="bob")["id"]
        bob.send({"type": "nick", "nick": "robert"})
        wait_for(lambda: "robert" in session.members(), message="rename seen")
        bob.send({"type": "quit"})
        wait_for(lambda: session.members() == ["alice"], message="robert gone")
    finally:
        bob.close()


def test_send_text_and_commands_are_echoed_and_settled(server, make_session):
    session, events = make_session(server.port)
    assert session.send_text("hello") == "sent"
    assert session.send_command("/join dev") == "sent"
    assert session.wait_settled(5)
    assert events.find("message", text="hello", nick="alice")["ref"]
    wait_for(lambda: session.current_room == "dev", message="current room follows /join")
    assert sorted(session.joined_rooms()) == ["dev", "lobby"]
    session.send_command("/part")
    wait_for(lambda: session.current_room == "lobby", message="back to lobby after /part")
    with pytest.raises(Refused, match="usage"):
        session.send_command("/msg")


def test_unknown_commands_are_forwarded_to_the_server(server, make_session):
    session, events = make_session(server.port)
    session.send_command("/frobnicate now")
    events.wait("error", code="unknown_command")


def test_first_connection_failures_are_errors(server, make_session):
    make_session(server.port, "alice")
    with pytest.raises(RefusedError, match="(?i)taken|in use"):
        ChatSession("127.0.0.1", server.port, "ALICE").connect()
    stopped_port = server.port
    server.stop()
    with pytest.raises(UnreachableError):
        ChatSession("127.0.0.1", stopped_port, "carol").connect()


def test_reconnects_rejoins_and_sends_queued_lines(server_factory, make_session):
    server = server_factory()
    port = server.port
    session, events = make_session(port)
    session.send_command("/join dev")
    wait_for(lambda: session.current_room == "dev", message="in dev")

    server.stop()
    events.wait("status", level="error")  # says so at once
    wait_for(lambda: session.state in ("reconnecting", "connecting"), message="reconnecting")
    assert session.send_text("typed while away") == "queued"
    assert session.queued() == 1

    server2 = server_factory(port=port)  # same port: the address the client knows
    watcher = JsonClient(port, "watcher", room="dev")
    try:
        message = watcher.expect("message", nick="alice", timeout=10)
        assert message["text"] == "typed while away" and message["room"] == "dev"
        wait_for(lambda: session.state == "connected", message="connected again")
        status = events.wait("status", level="info", transient=False)
        assert "rejoined" in status["text"] and "dev" in status["text"]
        assert session.nick == "alice"
        assert sorted(session.joined_rooms()) == ["dev", "lobby"]
        assert session.current_room == "dev"  # rejoining does not move you
        who = watcher.request({"type": "who"})
        alice = next(user for user in who["users"] if user["nick"] == "alice")
        assert sorted(alice["rooms"]) == ["dev", "lobby"]
        assert session.wait_settled(5)
    finally:
        watcher.close()
        server2.stop()


def test_queue_is_bounded_and_refuses_visibly(server_factory, make_session):
    server = server_factory()
    session, events = make_session(server.port, queue_limit=2, backoff_initial=5,
                                   backoff_max=5)
    server.stop()
    wait_for(lambda: session.state == "reconnecting", message="reconnecting")
    session.send_text("one")
    session.send_text("two")
    with pytest.raises(Refused, match="already waiting"):
        session.send_text("three")


def test_quit_after_quit_and_submit_after_quit(server, make_session):
    session, _ = make_session(server.port)
    session.quit()
    session.quit()
    assert session.state == "closed"
    with pytest.raises(Refused):
        session.send_text("too late")


def test_after_giving_up_lines_are_refused_at_once(server_factory, make_session):
    server = server_factory()
    port = server.port
    # one attempt, a second or two after the loss: time to queue a line before it fails
    session, events = make_session(port, max_attempts=1, backoff_initial=2,
                                   backoff_max=2)
    server.stop()
    wait_for(lambda: session.state == "reconnecting", message="reconnecting")
    assert session.send_text("typed while away") == "queued"

    gave_up = events.wait("status", level="error", state="failed")
    assert gave_up["text"] == (f"gave up reconnecting to 127.0.0.1:{port}; "
                               "1 queued line(s) were not sent")
    with pytest.raises(SessionEnded, match=r"^not sent: gave up reconnecting to 127\.0\.0\.1:"):
        session.send_text("typed after giving up")
    with pytest.raises(SessionEnded):
        session.send_command("/join dev")
    assert session.queued() == 0
    started = time.monotonic()
    assert not session.wait_settled(10)  # the dropped line never will be: say so now
    assert time.monotonic() - started < 1


def test_a_lingering_old_connection_does_not_block_the_nick(server, make_session):
    # The server still holds alice's old connection when she reconnects: her client proves it
    # is the same one (the welcome's resume token) and gets her nick back at once, instead of
    # "nick taken" until the server's keepalive gives up on the ghost.
    relay = Relay(server.port)
    watcher = JsonClient(server.port, "watcher")
    try:
        session, events = make_session(relay.port)
        events.wait("joined", room="lobby")
        watcher.expect("join", nick="alice")
        assert "resume" not in events.find("welcome")  # a credential: never shown
        relay.cut()
        events.wait("status", level="info", state="connected")
        wait_for(lambda: any("reconnected" in str(e.get("text")) for e in events.events
                             if e.get("type") == "status"), message="reconnected")
        assert session.nick == "alice"
        assert not any("refused" in str(e.get("text")) for e in events.events
                       if e.get("type") == "status")
        quit_frame = watcher.expect("quit", nick="alice")
        assert quit_frame["reason"] == "reconnected"
        watcher.expect("join", nick="alice")
        session.send_text("back again")
        watcher.expect("message", nick="alice", text="back again")
        for request in ({"type": "who", "room": "lobby"}, {"type": "who"}):
            who = watcher.request(request)
            assert sorted(user["nick"] for user in who["users"]) == ["alice", "watcher"], who
        session.quit()
    finally:
        watcher.close()
        relay.close()
