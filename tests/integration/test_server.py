"""The server against real clients on real sockets (127.0.0.1, ephemeral ports)."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import struct
import threading
import time

import pytest

from chatkit.protocol import COMMANDS, MAX_FRAME, MAX_TEXT, PROTOCOL_VERSION

from helpers import JsonClient, LineClient, TextClient, wait_for

#: what a guest's /help and welcome list (operators and admins see more: test_moderation.py)
COMMAND_NAMES = frozenset(spec.name for spec in COMMANDS)
_refs = itertools.count(1)


class Clients:
    """Opens clients and closes every one of them at teardown."""

    def __init__(self) -> None:
        self.opened: list[LineClient] = []

    def _track(self, factory, *args, **kwargs):
        client = factory(*args, **kwargs)
        self.opened.append(client)
        return client

    def text(self, port: int, nick: str | None = None) -> TextClient:
        return self._track(TextClient, port, nick)

    def json(self, port: int, nick: str | None = None, room="lobby", **kwargs) -> JsonClient:
        return self._track(JsonClient, port, nick, room, **kwargs)

    def raw(self, port: int) -> LineClient:
        return self._track(LineClient, port)

    def raw_json(self, port: int) -> JsonClient:
        """A JSON client that has not said hello yet."""
        return self._track(JsonClient, port)

    def close_all(self) -> None:
        for client in self.opened:
            client.close()


@pytest.fixture
def clients():
    opened = Clients()
    try:
        yield opened
    finally:
        opened.close_all()


def current_nick(client: JsonClient) -> str:
    nick = client.welcome["nick"]
    for frame in client.frames:
        if frame["type"] == "nick" and frame["old"].casefold() == nick.casefold():
            nick = frame["new"]
    return nick


def sync(client: JsonClient) -> list[dict]:
    """Every frame received before a barrier, so all fan-out accepted before it.

    The barrier is a private message to oneself: it is an event like any other, so it is
    delivered after every event accepted earlier (a direct reply such as `pong` is not
    ordered with events in flight)."""
    token = f"sync{next(_refs)}"
    client.send({"type": "privmsg", "to": current_nick(client), "text": token})
    frames = []
    for _ in range(100_000):
        frame = client.read_frame()
        assert frame is not None, f"closed before the barrier; got {frames}"
        if frame["type"] == "private" and frame["text"] == token:
            return frames
        assert not (frame["type"] == "error" and frame["code"] == "no_such_nick"), frame
        frames.append(frame)
    raise AssertionError("no barrier")


def sync_text(server, client: TextClient) -> list[str]:
    """Every line received before a barrier (a text-mode user's own lines are processed
    first, then a private message to itself from a helper JSON client arrives)."""
    client.say("/who")  # answered once every line typed before it was handled
    lines = []
    for _ in range(100_000):
        line = client.read_line()
        assert line is not None, f"closed before /who answer; got {lines}"
        if line.startswith("*** ") and " connected: " in line:
            break
        lines.append(line)
    token = f"sync{next(_refs)}"
    helper_nick = f"syncer{next(_refs)}"
    helper = JsonClient(server.port, helper_nick, room=None)
    try:
        answer = helper.request({"type": "privmsg", "to": client.nick, "text": token})
        assert answer["type"] == "private", answer
        helper.send({"type": "quit"})
        helper.read_until_eof()
    finally:
        helper.close()
    wait_for(lambda: helper_nick not in server.hub.nicks and helper_nick not in
             {s.nick for s in server.door.connections}, message="sync helper gone")
    for _ in range(100_000):
        line = client.read_line()
        assert line is not None, f"closed before the barrier; got {lines}"
        if line.endswith(f"> {token}"):
            return [li for li in lines if "syncer" not in li]
        if "syncer" not in line:
            lines.append(line)
    raise AssertionError("no barrier")


def request_ok(client: JsonClient, frame: dict, kind: str | None = None) -> dict:
    answer = client.request(frame)
    assert answer["type"] != "error", answer
    if kind is not None:
        assert answer["type"] == kind, answer
    return answer


def request_error(client: JsonClient, frame: dict, code: str) -> dict:
    answer = client.request(frame)
    assert answer["type"] == "error", answer
    assert answer["code"] == code, answer
    assert answer["message"] and "\n" not in answer["message"]
    return answer


def expect_eof(client: LineClient, timeout: float = 5.0) -> list[str]:
    return client.read_until_eof(timeout)


def reset(client: LineClient) -> None:
    """Vanish with a TCP reset (SO_LINGER 0), as a killed or crashed machine's peer would."""
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


# --------------------------------------------------------------------------- rooms and fan-out


def test_many_clients_in_several_rooms(server, clients):
    rooms = {"alpha": [], "beta": [], "gamma": []}
    text_members = {}
    for index, room in enumerate(rooms):
        for n in range(4):
            client = clients.json(server.port, f"{room}{n}", room=room)
            rooms[room].append(client)
        text = clients.text(server.port, f"t{room}")
        text.say(f"/join {room}")
        text.expect(f"you joined {room}")
        text_members[room] = text
        assert index >= 0
    # everyone but the text users drains their join notices
    for members in rooms.values():
        for client in members:
            sync(client)
    for room in rooms:
        sync_text(server, text_members[room])
    # each JSON member sends one message; each text member one too
    sent = {room: [] for room in rooms}
    for room, members in rooms.items():
        for client in members:
            text = f"from {client.welcome['nick']} to {room}"
            request_ok(client, {"type": "msg", "room": room, "text": text}, "message")
            sent[room].append(text)
        text_members[room].say(f"hello {room} from text")
        sent[room].append(f"hello {room} from text")
        # the text user's message is accepted once its next command is answered
        sync_text(server, text_members[room])
    for room, members in rooms.items():
        for client in members:
            sync(client)
            got = [f for f in client.frames if f["type"] == "message" and f.get("ref") is None]
            assert all(f["room"] == room for f in got)
            mine = f"from {client.welcome['nick']} to {room}"
            assert sorted(f["text"] for f in got) == sorted(t for t in sent[room] if t != mine)
        sync_text(server, text_members[room])
        lines = [line for line in text_members[room].lines
                 if line.startswith("[") and "syncer" not in line]
        # a text user does not get its own message back
        assert lines == [f"[{room}] <{c.welcome['nick']}> from {c.welcome['nick']} to {room}"
                         for c in members]
    # lobby members saw no room messages at all
    lobby_only = clients.json(server.port, "observer")
    assert not [f for f in sync(lobby_only) if f["type"] == "message"]
    rooms_frame = request_ok(lobby_only, {"type": "rooms"}, "rooms")
    counts = {r["name"]: r["members"] for r in rooms_frame["rooms"]}
    assert counts == {"alpha": 5, "beta": 5, "gamma": 5, "lobby": 4}


def test_text_and_json_clients_talk(server, clients):
    alice = clients.text(server.port, "alice")
    bob = clients.json(server.port, "bob")
    alice.expect("*** bob joined lobby")
    alice.say("héllo bob 🎉")
    frame = bob.expect("message")
    assert frame == {**frame, "room": "lobby", "nick": "alice", "text": "héllo bob 🎉",
                     "action": False}
    request_ok(bob, {"type": "msg", "room": "lobby", "text": "hi alice"})
    assert alice.expect("<bob>") == "[lobby] <bob> hi alice"
    request_ok(bob, {"type": "me", "room": "lobby", "text": "waves"})
    assert alice.expect("* bob") == "[lobby] * bob waves"
    alice.say("/me waves back")
    assert bob.expect("message", action=True)["text"] == "waves back"
    request_ok(bob, {"type": "privmsg", "to": "ALICE", "text": "psst"})
    assert alice.expect("[pm]") == "[pm] <bob> psst"
    alice.say("/msg bob psst back")
    assert bob.expect("private")["text"] == "psst back"


# --------------------------------------------------------------------------- every command


def test_every_command_text_mode(server, clients):
    alice = clients.text(server.port, "alice")
    bob = clients.json(server.port, "bob")
    carol = clients.text(server.port, "carol")
    alice.expect("*** bob joined lobby")
    alice.expect("*** carol joined lobby")

    alice.say("/join #dev")
    assert alice.expect("you joined") == "*** you joined dev (1 here: alice)"
    request_ok(bob, {"type": "join", "room": "DEV"}, "joined")
    assert alice.expect("joined dev") == "*** bob joined dev"

    alice.say("hello dev")  # to the current room, dev
    assert bob.expect("message") == {**bob.frames[-1], "room": "dev", "text": "hello dev"}
    assert not [f for f in sync(bob) if f["type"] == "message"]
    assert not [line for line in sync_text(server, carol) if "hello dev" in line]

    alice.say("/rooms")
    assert alice.expect("rooms:") == "*** 2 rooms:"
    assert alice.read_line() == "***   dev (2)"
    assert alice.read_line() == "***   lobby (3)"

    alice.say("/who")
    assert alice.expect("connected") == \
        "*** 3 connected: alice (lobby, dev), bob (lobby, dev), carol (lobby)"
    alice.say("/who dev")
    assert alice.expect(" in dev") == "*** 2 in dev: alice, bob"
    alice.say("/who nowhere")
    assert alice.expect("!!!") == "!!! no such room: nowhere"

    alice.say("/msg bob psst")
    assert bob.expect("private")["from"] == "alice"
    alice.say("/msg nobody hi")
    assert alice.expect("!!!") == "!!! no such nick: nobody"

    alice.say("/me waves")
    frame = bob.expect("message", action=True)
    assert (frame["room"], frame["nick"], frame["text"]) == ("dev", "alice", "waves")

    alice.say("/topic")
    assert alice.expect("topic") == "*** dev has no topic"
    alice.say("/topic ship it")
    assert alice.expect("topic") == "*** alice set the topic of dev: ship it"
    assert bob.expect("topic") == {**bob.frames[-1], "room": "dev", "text": "ship it",
                                   "nick": "alice"}
    alice.say("/topic")
    assert alice.expect("topic") == "*** topic of dev: ship it"

    alice.say("/nick alicia")
    assert alice.expect("known as") == "*** you are now known as alicia"
    assert bob.expect("nick") == {**bob.frames[-1], "old": "alice", "new": "alicia"}
    assert carol.expect("known as") == "*** alice is now known as alicia"
    # bob shares two rooms with her but hears of the rename once
    assert not [f for f in sync(bob) if f["type"] == "nick"]

    alice.say("/help")
    assert alice.expect("commands") == "*** commands:"
    help_lines = [alice.read_line() for _ in COMMAND_NAMES]
    for name in COMMAND_NAMES:
        assert any(line.strip("* ").startswith(f"/{name}") for line in help_lines), name

    alice.say("/frobnicate")
    assert alice.expect("!!!").startswith("!!! unknown command /frobnicate")
    alice.say("/join")
    assert alice.expect("!!!") == "!!! usage: /join ROOM"
    alice.say("//slash text")
    assert bob.expect("message")["text"] == "/slash text"

    alice.say("/part")  # leaves dev, the current room
    assert alice.expect("left") == "*** you left dev"
    assert bob.expect("part") == {**bob.frames[-1], "room": "dev", "nick": "alicia",
                                  "reason": None}
    alice.say("back in the lobby")
    assert carol.expect("<alicia>") == "[lobby] <alicia> back in the lobby"
    alice.say("/join dev")
    alice.expect("you joined dev")
    alice.say("/part dev see you")
    assert bob.expect("part")["reason"] == "see you"

    alice.say("/quit gone home")
    assert "*** bye: goodbye" in expect_eof(alice)
    assert bob.expect("quit") == {**bob.frames[-1], "nick": "alicia", "reason": "gone home"}
    assert carol.expect("quit") == "*** alicia quit (gone home)"

    carol.say("/exit")
    expect_eof(carol)
    assert bob.expect("quit", nick="carol")["reason"] is None
    wait_for(lambda: len(server.door.connections) == 1, message="two sessions gone")


def test_every_command_json_mode(server, clients):
    alice = clients.json(server.port, "alice")
    bob = clients.json(server.port, "bob")
    tom = clients.text(server.port, "tom")
    welcome = alice.welcome
    assert welcome["version"] == PROTOCOL_VERSION and welcome["server"] == "test"
    assert {c["name"] for c in welcome["commands"]} == COMMAND_NAMES
    # rate 0: the test server lifts the limit (a default server announces 5 and 20)
    assert welcome["limits"] == {"max_frame": MAX_FRAME, "max_text": MAX_TEXT,
                                 "max_nick": 24, "max_room": 32, "rate": 0, "burst": 0}
    alice.expect("join", nick="bob")

    joined = request_ok(alice, {"type": "join", "room": "#Dev"}, "joined")
    assert joined == {**joined, "room": "Dev", "topic": None, "members": ["alice"]}
    joined = request_ok(bob, {"type": "join", "room": "dev"}, "joined")
    assert joined["room"] == "Dev" and joined["members"] == ["alice", "bob"]  # creator's case
    assert alice.expect("join", room="Dev")["nick"] == "bob"

    echo = request_ok(alice, {"type": "msg", "room": "dev", "text": "  hi\tdev  "}, "message")
    assert echo["text"] == "hi dev" and echo["nick"] == "alice"
    assert bob.expect("message")["id"] == echo["id"]
    echo = request_ok(alice, {"type": "me", "room": "dev", "text": "dances"}, "message")
    assert echo["action"] is True
    assert bob.expect("message", action=True)["text"] == "dances"

    private = request_ok(alice, {"type": "privmsg", "to": "Bob", "text": "psst"}, "private")
    assert (private["from"], private["to"]) == ("alice", "bob")
    assert bob.expect("private")["text"] == "psst"
    request_ok(alice, {"type": "privmsg", "to": "tom", "text": "hey tom"}, "private")
    assert tom.expect("[pm]") == "[pm] <alice> hey tom"
    tom.say("/msg alice hi back")
    assert alice.expect("private")["from"] == "tom"

    who = request_ok(alice, {"type": "who"}, "who")
    assert who["room"] is None
    assert who["users"] == [{"nick": "alice", "rooms": ["lobby", "Dev"]},
                            {"nick": "bob", "rooms": ["lobby", "Dev"]},
                            {"nick": "tom", "rooms": ["lobby"]}]
    who = request_ok(alice, {"type": "who", "room": "DEV"}, "who")
    assert who["room"] == "Dev" and [u["nick"] for u in who["users"]] == ["alice", "bob"]

    rooms = request_ok(alice, {"type": "rooms"}, "rooms")
    assert rooms["rooms"] == [{"name": "Dev", "members": 2, "topic": None},
                              {"name": "lobby", "members": 3, "topic": None}]

    topic = request_ok(alice, {"type": "topic", "room": "dev"}, "topic")
    assert topic["text"] is None and topic["nick"] is None
    topic = request_ok(alice, {"type": "topic", "room": "dev", "text": "the topic"}, "topic")
    assert topic["nick"] == "alice" and topic["text"] == "the topic"
    assert bob.expect("topic")["text"] == "the topic"
    assert request_ok(bob, {"type": "topic", "room": "dev"})["text"] == "the topic"
    assert request_ok(alice, {"type": "rooms"})["rooms"][0]["topic"] == "the topic"
    request_ok(alice, {"type": "topic", "room": "dev", "text": ""}, "topic")
    assert bob.expect("topic")["text"] is None

    assert {c["name"] for c in request_ok(alice, {"type": "help"}, "help")["commands"]} == \
        COMMAND_NAMES
    request_ok(alice, {"type": "ping"}, "pong")

    renamed = request_ok(alice, {"type": "nick", "nick": "Alicia"}, "nick")
    assert (renamed["old"], renamed["new"]) == ("alice", "Alicia")
    assert bob.expect("nick")["new"] == "Alicia"
    assert tom.expect("known as") == "*** alice is now known as Alicia"
    request_ok(alice, {"type": "nick", "nick": "alicia"}, "nick")  # own nick, other case

    # `command` frames are parsed exactly like text mode
    assert request_ok(alice, {"type": "command", "line": "/who dev"}, "who")["room"] == "Dev"
    assert request_ok(alice, {"type": "command", "line": "/topic again"}, "topic")["room"] == \
        "Dev"  # the current room is the one joined last
    request_ok(alice, {"type": "command", "line": "/me jumps"}, "message")
    request_error(alice, {"type": "command", "line": "/nope"}, "unknown_command")
    request_error(alice, {"type": "command", "line": "/msg bob"}, "bad_frame")
    request_error(alice, {"type": "command", "line": "no slash"}, "bad_frame")

    part = request_ok(alice, {"type": "part", "room": "dev", "reason": "later"}, "part")
    assert part["nick"] == "alicia" and part["reason"] == "later"
    assert bob.expect("part")["reason"] == "later"
    request_error(alice, {"type": "msg", "room": "dev", "text": "x"}, "not_in_room")
    # the last one leaving removes a room; lobby stays
    request_ok(bob, {"type": "part", "room": "dev"}, "part")
    assert [r["name"] for r in request_ok(bob, {"type": "rooms"})["rooms"]] == ["lobby"]
    request_ok(bob, {"type": "part", "room": "lobby"}, "part")
    assert request_ok(bob, {"type": "rooms"})["rooms"] == [
        {"name": "lobby", "members": 2, "topic": None}]
    request_error(bob, {"type": "command", "line": "/me x"}, "not_in_room")

    bye = alice.request({"type": "quit", "reason": "gone"})
    assert bye["type"] == "bye"
    assert expect_eof(alice) == []
    assert tom.expect("quit") == "*** alicia quit (gone)"
    # bob shares no room with alice any more: no quit notice for him
    assert not [f for f in sync(bob) if f["type"] == "quit"]
    wait_for(lambda: len(server.door.connections) == 2, message="alice gone")


def test_join_without_create(server, clients):
    alice = clients.json(server.port, "alice", room=None)
    request_error(alice, {"type": "join", "room": "nowhere", "create": False}, "no_such_room")
    assert request_ok(alice, {"type": "join", "room": "lobby", "create": False}, "joined")
    request_error(alice, {"type": "join", "room": "bad room"}, "bad_room")
    request_error(alice, {"type": "join", "room": "x", "create": "yes"}, "bad_frame")
    request_error(alice, {"type": "join"}, "bad_frame")


def test_hello_without_room_joins_none(server, clients):
    alice = clients.json(server.port, "alice", room=None)
    assert [f["type"] for f in sync(alice)] == []
    request_error(alice, {"type": "msg", "room": "lobby", "text": "x"}, "not_in_room")
    alice.send({"type": "command", "line": "/topic"})
    assert alice.expect("error")["code"] == "not_in_room"
    bob = clients.json(server.port, "bob", room="other")
    assert bob.frames[-1]["room"] == "other"
    assert not [f for f in sync(alice) if f["type"] == "join"]


def test_message_errors(server, clients):
    alice = clients.json(server.port, "alice")
    request_error(alice, {"type": "msg", "room": "elsewhere", "text": "x"}, "not_in_room")
    request_error(alice, {"type": "me", "room": "elsewhere", "text": "x"}, "not_in_room")
    request_error(alice, {"type": "topic", "room": "elsewhere", "text": "x"}, "not_in_room")
    request_error(alice, {"type": "part", "room": "elsewhere"}, "not_in_room")
    request_error(alice, {"type": "privmsg", "to": "nobody", "text": "x"}, "no_such_nick")
    request_error(alice, {"type": "msg", "room": "lobby", "text": "x" * (MAX_TEXT + 1)},
                  "text_too_long")
    request_error(alice, {"type": "msg", "room": "lobby", "text": " \x1b\u200b "}, "empty_text")
    request_error(alice, {"type": "msg", "room": "lobby"}, "bad_frame")
    request_error(alice, {"type": "msg", "room": "lobby", "text": 5}, "bad_frame")
    request_error(alice, {"type": "who", "room": "nowhere"}, "no_such_room")
    request_error(alice, {"type": "hello", "version": 1, "nick": "again"}, "bad_frame")
    # control characters never reach anyone
    bob = clients.json(server.port, "bob")
    request_ok(alice, {"type": "msg", "room": "lobby", "text": "\x1b[2Jred\u202e\x07!"})
    assert bob.expect("message")["text"] == "red!"  # whole escape sequences removed


# --------------------------------------------------------------------------- nicknames


def test_nick_taken_is_case_insensitive_json(server, clients):
    clients.json(server.port, "alice")
    bob = clients.json(server.port)
    answer = bob.request({"type": "hello", "version": 1, "nick": "ALICE"})
    assert answer["type"] == "error" and answer["code"] == "nick_taken"
    answer = bob.request({"type": "hello", "version": 1, "nick": "ａｌｉｃｅ"})  # NFKC
    assert answer["code"] == "nick_taken"
    answer = bob.request({"type": "hello", "version": 1, "nick": "9lives"})
    assert answer["code"] == "bad_nick"
    answer = bob.request({"type": "hello", "version": 1, "nick": "x" * 25})
    assert answer["code"] == "bad_nick"
    answer = bob.request({"type": "hello", "version": 1, "nick": "bob", "room": "bad room"})
    assert answer["code"] == "bad_room"
    answer = bob.request({"type": "hello", "version": 1})
    assert answer["code"] == "bad_frame"
    assert bob.request({"type": "hello", "version": 1, "nick": "bob"})["type"] == "welcome"
    request_error(bob, {"type": "nick", "nick": "Alice"}, "nick_taken")
    request_error(bob, {"type": "nick", "nick": "bob"}, "bad_nick")
    request_error(bob, {"type": "nick", "nick": "no way"}, "bad_nick")


def test_nick_taken_text_mode_asks_again(server, clients):
    clients.json(server.port, "alice")
    tom = clients.text(server.port)
    tom.expect_prompt()
    tom.say("Alice")
    assert tom.expect("!!!") == "!!! nickname Alice is taken; choose another"
    tom.expect_prompt()
    tom.say("1nvalid")
    assert tom.expect("!!!").startswith("!!! invalid nickname")
    tom.expect_prompt()
    tom.say("   ")  # an empty line is ignored, no new prompt
    tom.say("tom")
    assert tom.expect("welcome") == "*** welcome to test, tom! Type to talk, /help for commands."
    assert tom.expect("you joined") == "*** you joined lobby (2 here: alice, tom)"
    tom.say("/nick ALICE")
    assert tom.expect("!!!") == "!!! nickname ALICE is taken; choose another"


def test_text_mode_quit_before_nickname(server, clients):
    tom = clients.text(server.port)
    tom.expect_prompt()
    tom.say("/quit")
    assert "*** bye: goodbye" in expect_eof(tom)
    wait_for(lambda: not server.door.connections, message="session gone")


def test_late_json_hello_after_text_greeting_switches_to_json(server, clients):
    # docs/protocol.md: a client that arrives late with `{` is still switched to JSON mode
    late = clients.text(server.port)
    late.expect_prompt()
    late.send_raw(b'{"type": "hello", "version": 1, "nick": "late", "ref": "h"}\n')
    welcome = json.loads(late.read_until(lambda line: line.startswith("{")))  # after greeting
    assert welcome["type"] == "welcome" and welcome["nick"] == "late" and welcome["ref"] == "h"
    assert json.loads(late.read_line())["type"] == "joined"
    late.send_raw(b'{"type": "ping", "ref": 1}\n')
    assert json.loads(late.read_until(lambda line: '"ref":1' in line))["type"] == "pong"


# --------------------------------------------------------------------------- malformed input


def test_json_mode_error_paths(server, clients):
    alice = clients.json(server.port)
    alice.send_raw(b'{"type": "ping"}\n')
    assert alice.expect("error")["code"] == "not_registered"
    request_error(alice, {"type": "msg", "room": "lobby", "text": "x"}, "not_registered")
    request_error(alice, {"type": "bogus"}, "not_registered")
    alice.send_raw(b"not json at all\n")
    assert alice.expect("error")["code"] == "bad_frame"
    alice.send({"type": "hello", "version": 1, "nick": "alice"})
    alice.welcome = alice.expect("welcome")
    alice.expect("joined")
    bob = clients.json(server.port, "bob")

    cases = [
        (b"{not json\n", "bad_frame"),
        (b"[1, 2, 3]\n", "bad_frame"),
        (b'{"no": "type"}\n', "bad_frame"),
        (b'{"type": "msg", "room": "lobby", "text": "\xff\xfe"}\n', "bad_utf8"),
        (b"\xc3\x28\n", "bad_utf8"),
        (b'{"type": "frobnicate"}\n', "unknown_type"),
        (b"{" + b"x" * (MAX_FRAME + 10) + b"}\n", "frame_too_long"),
    ]
    for data, code in cases:
        alice.send_raw(data)
        error = alice.expect("error")
        assert error["code"] == code, (data[:40], error)
    # errors carry the ref of the frame that caused them
    error = request_error(alice, {"type": "frobnicate"}, "unknown_type")
    assert error["ref"].startswith("t")
    # line endings: CR, LF and CRLF; NUL bytes dropped; blank lines ignored
    alice.send_raw(b'{"type":"msg","room":"lobby","text":"cr"}\r'
                   b'{"type":"msg","room":"lobby","text":"lf"}\n\n\r\n'
                   b'{"type":"msg","room":"lobby","text":"crlf"}\r\n'
                   b'{"type":"msg",\0"room":"lobby","text":"n\0ul"}\n')
    sync(alice)  # alice's lines were handled ...
    got = [f["text"] for f in sync(bob) if f["type"] == "message"]  # ... and delivered
    assert got == ["cr", "lf", "crlf", "nul"]
    # a frame split across many writes
    data = b'{"type":"msg","room":"lobby","text":"split"}\n'
    for i in range(0, len(data), 7):
        alice.send_raw(data[i:i + 7])
    assert bob.expect("message")["text"] == "split"
    # nothing of the above broke the session
    assert not [f for f in sync(alice) if f["type"] == "error"]
    assert server.hub.nicks.keys() == {"alice", "bob"}


def test_oversized_frame_over_many_writes(server, clients):
    alice = clients.json(server.port, "alice")
    for _ in range(4):
        alice.send_raw(b"y" * 4000)
    alice.send_raw(b"\n")
    errors = [f for f in sync(alice) if f["type"] == "error"]
    assert [e["code"] for e in errors] == ["frame_too_long"]


def test_text_mode_error_paths(server, clients):
    bob = clients.json(server.port, "bob")
    tom = clients.text(server.port)
    tom.expect_prompt()
    # telnet negotiation on connect and invalid UTF-8 as a nickname
    tom.send_raw(b"\xff\xfb\x1f\xff\xfb\x18\xff\xfa\x18\x00xterm\xff\xf0")
    tom.send_raw(b"\xc3\x28\r\n")
    assert tom.expect("!!!").startswith("!!! that line was not UTF-8")
    tom.expect_prompt()
    tom.say("tom")
    tom.nick = "tom"
    tom.expect("you joined lobby")
    bob.expect("join", nick="tom")

    tom.send_raw(b"caf\xe9 latin-1\r\n")
    assert tom.expect("!!!").startswith("!!! that line was not UTF-8")
    # Ctrl-C in telnet, then a normal line
    tom.send_raw(b"\xff\xf4\xff\xfd\x06")
    tom.send_raw(b"after ctrl-c\r\n")
    # CR, LF, CRLF endings and NUL bytes
    tom.send_raw(b"one\rtwo\nthree\r\nfo\0ur\n\n\r\n")
    # an overlong line, then one that works
    tom.send_raw(b"z" * (MAX_FRAME * 2) + b"\r\n")
    assert tom.expect("!!!") == f"!!! line longer than {MAX_FRAME} bytes was discarded"
    tom.say("still here")
    # a line of escape sequences reaches nobody's terminal intact
    tom.send_raw(b"\x1b]0;pwned\x07\x1b[31mred\r\n")
    tom.send_raw(b"\t\x1b\x07\r\n")  # nothing left after sanitising: empty_text
    assert tom.expect("!!!") == "!!! message is empty"
    got = [f["text"] for f in sync(bob) if f["type"] == "message"]
    assert got == ["after ctrl-c", "one", "two", "three", "four", "still here",
                   "red"]
    assert not [line for line in sync_text(server, tom) if line.startswith("!!!")]


def test_wrong_protocol_version_closes(server, clients):
    client = clients.json(server.port)
    client.send({"type": "hello", "version": 99, "nick": "future", "ref": 1})
    error = client.read_frame()
    assert error["type"] == "error" and error["code"] == "unsupported_version"
    assert error["ref"] == 1
    assert expect_eof(client) == []
    wait_for(lambda: not server.door.connections, message="session gone")
    assert "future" not in server.hub.nicks
    other = clients.json(server.port)
    other.send({"type": "hello", "version": "1", "nick": "str"})
    assert other.expect("error")["code"] == "bad_frame"


# --------------------------------------------------------------------------- slow and vanishing


def _send_batches(sender: JsonClient, readers: list, start: int, count: int, batch: int
                  ) -> None:
    """Send `count` messages in batches; after each batch every reader reads up to its end."""
    for first in range(start, start + count, batch):
        last = min(first + batch, start + count) - 1
        payload = b"".join(
            b'{"type":"msg","room":"lobby","text":"m%06d ' % n + b"p" * 100 + b'"}\n'
            for n in range(first, last + 1))
        sender.send_raw(payload)
        begin = time.monotonic()
        sender.expect("message", text=f"m{last:06d} " + "p" * 100)
        for reader in readers:
            if isinstance(reader, JsonClient):
                reader.expect("message", text=f"m{last:06d} " + "p" * 100)
            else:
                reader.expect(f"m{last:06d}")
        assert time.monotonic() - begin < 3.0, "readers were slowed down"


def _received(reader) -> list[int]:
    if isinstance(reader, JsonClient):
        texts = [f["text"] for f in reader.frames if f["type"] == "message"]
    else:
        texts = [line.split("> ", 1)[1] for line in reader.lines if line.startswith("[lobby]")]
    return [int(text[1:7]) for text in texts]


def test_non_reader_is_disconnected_others_unaffected(server_factory, clients):
    server = server_factory(max_backlog=64 * 1024)
    slow = clients.json(server.port, "slow", rcvbuf=4096)
    sender = clients.json(server.port, "sender")
    reader = clients.json(server.port, "reader")
    tom = clients.text(server.port, "tom")
    sync(sender)
    sync(reader)
    sync_text(server, tom)
    sent = 0
    for _ in range(40):  # at most 40 x 500 messages
        _send_batches(sender, [reader, tom], sent, 500, 100)
        sent += 500
        if "slow" not in server.hub.nicks:
            break
    wait_for(lambda: "slow" not in server.hub.nicks, message="the non-reader disconnected")
    sync(reader)
    sync_text(server, tom)
    quits = [f for f in reader.frames if f["type"] == "quit"]
    assert [f["nick"] for f in quits] == ["slow"] and "reading" in quits[0]["reason"]
    assert [line for line in tom.lines if line.startswith("*** slow quit")]
    # everyone else keeps receiving, in order
    _send_batches(sender, [reader, tom], sent, 300, 100)
    sent += 300
    assert _received(reader) == list(range(sent))
    assert _received(tom) == list(range(sent))
    assert _received(sender) == list(range(sent))
    # the non-reader's connection is closed: reading what is left ends in EOF or a reset
    slow.sock.settimeout(5)
    for _ in range(100_000):
        try:
            if not slow.sock.recv(1 << 20):
                break
        except ConnectionResetError:
            break
    wait_for(lambda: len(server.door.connections) == 3, message="session removed")


def test_late_reader_gets_everything_after_a_non_reader_was_dropped(server_factory, clients):
    """The flusher must keep draining backlogs after a dropped client's socket was closed
    (a new connection may get the same file descriptor number)."""
    server = server_factory(max_backlog=256 * 1024, history_on_join=0)
    sender = clients.json(server.port, "sender")
    for round_number in range(3):
        pauser = clients.json(server.port, f"pauser{round_number}", rcvbuf=4096)
        sync(sender)
        start = round_number * 10_000
        # ~40 KiB for the pauser: more than its socket takes, less than its backlog limit
        _send_batches(sender, [], start, 250, 50)
        frames = [f for f in sync(pauser) if f["type"] == "message"]
        assert [int(f["text"][1:7]) for f in frames] == list(range(start, start + 250))
        # now drop it the hard way while it still has a backlog
        _send_batches(sender, [], start + 1000, 250, 50)
        reset(pauser)
        wait_for(lambda r=round_number: f"pauser{r}" not in server.hub.nicks,
                 message="pauser gone")
        sync(sender)


def test_vanishing_clients_are_cleaned_out(server, clients):
    watcher = clients.json(server.port, "watcher")
    tom = clients.text(server.port, "tom")
    gone = [clients.json(server.port, f"gone{n}") for n in range(3)]
    request_ok(watcher, {"type": "join", "room": "side"})
    request_ok(gone[2], {"type": "join", "room": "side"})
    watcher.expect("join", room="side", nick="gone2")
    reset(gone[0])  # TCP reset
    gone[1].close()  # closed without /quit
    gone[2].sock.shutdown(socket.SHUT_WR)  # half-closed: the server sees EOF
    wait_for(lambda: len(server.door.connections) == 2, message="sessions cleaned")
    sync(watcher)
    quits = [f for f in watcher.frames if f["type"] == "quit"]
    # one notice per vanished client, even for gone2 which shared two rooms with watcher
    assert sorted(f["nick"] for f in quits) == ["gone0", "gone1", "gone2"]
    assert all(f["reason"] for f in quits)
    sync_text(server, tom)
    quit_lines = sorted(line for line in tom.lines if " quit" in line)
    assert [line.split(" (")[0] for line in quit_lines] == [f"*** gone{n} quit" for n in range(3)]
    wait_for(lambda: len(server.door.connections) == 2, message="sessions cleaned")
    assert set(server.hub.nicks) == {"watcher", "tom"}
    assert request_ok(watcher, {"type": "who", "room": "side"})["users"] == [
        {"nick": "watcher", "rooms": ["lobby", "side"]}]
    # a client that vanishes before registering leaves nothing behind either
    half = clients.raw(server.port)
    half.send_raw(b'{"type": "hel')
    wait_for(lambda: len(server.door.connections) == 3, message="unregistered session")
    reset(half)
    wait_for(lambda: len(server.door.connections) == 2, message="unregistered session gone")


def test_no_sessions_or_rooms_left_after_everyone_leaves(server, clients):
    people = [clients.json(server.port, f"p{n}", room=f"r{n % 3}") for n in range(9)]
    people += [clients.text(server.port, f"t{n}") for n in range(3)]
    wait_for(lambda: len(server.hub.nicks) == 12, message="all registered")
    for n, person in enumerate(people):
        if n % 3 == 0:
            person.close()
        elif isinstance(person, JsonClient):
            person.send({"type": "quit"})
            expect_eof(person)
        else:
            person.say("/quit")
            expect_eof(person)
    wait_for(lambda: not server.door.connections, message="no sessions")
    assert server.hub.nicks == {}
    assert list(server.hub.rooms) == ["lobby"] and not server.hub.rooms["lobby"].members
    # the autouse no_leaked_threads fixture checks the session threads ended


# --------------------------------------------------------------------------- life cycle


def test_graceful_stop_notifies_clients(server_factory, clients):
    server = server_factory()
    alice = clients.json(server.port, "alice")
    tom = clients.text(server.port, "tom")
    pending = clients.raw(server.port)  # connected, never registered
    wait_for(lambda: len(server.door.connections) == 3, message="three sessions")
    server.stop()
    assert alice.expect("bye")["reason"] == "server shutting down"
    assert expect_eof(alice) == []
    assert not [f for f in alice.frames if f["type"] == "notice"]  # said once, by the bye
    lines = expect_eof(tom)
    assert [line for line in lines if "shutting down" in line] == [
        "*** bye: server shutting down"]
    assert not [line for line in lines if "quit" in line]  # no quit storm during shutdown
    expect_eof(pending)
    assert not server.door.connections
    server.stop()  # idempotent


def _id_scenario(server, clients):
    alice = clients.json(server.port, "alice")
    bob = clients.json(server.port, "bob")
    before = time.time()
    request_ok(alice, {"type": "join", "room": "dev"})
    request_ok(bob, {"type": "join", "room": "dev"})
    for n in range(20):
        request_ok(alice, {"type": "msg", "room": "dev" if n % 2 else "lobby", "text": f"{n}"})
        request_ok(bob, {"type": "msg", "room": "lobby", "text": f"b{n}"})
    request_ok(alice, {"type": "privmsg", "to": "bob", "text": "pm"})
    request_error(alice, {"type": "nope"}, "unknown_type")
    request_ok(bob, {"type": "rooms"})
    request_ok(bob, {"type": "nick", "nick": "robert"})
    sync(alice)
    sync(bob)
    bob.send({"type": "quit"})
    expect_eof(bob)
    alice.expect("quit")
    return before, alice, bob


def test_every_frame_has_id_and_ts(server, clients):
    before, alice, bob = _id_scenario(server, clients)
    after = time.time()
    for client in (alice, bob):
        assert len(client.frames) > 40
        ids = [frame["id"] for frame in client.frames]
        assert all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        assert len(set(ids)) == len(ids)
        for frame in client.frames:
            assert isinstance(frame["ts"], float)
            assert before - 1 <= frame["ts"] <= after + 1
    # a room message has one id shared by every recipient
    alice_ids = {f["text"]: f["id"] for f in alice.frames if f["type"] == "message"}
    bob_ids = {f["text"]: f["id"] for f in bob.frames if f["type"] == "message"}
    assert alice_ids and all(bob_ids[text] == i for text, i in alice_ids.items())


def test_handshake_timeout(server_factory, clients):
    server = server_factory(handshake_timeout=0.5)
    registered = clients.json(server.port, "early")
    text = clients.raw(server.port)
    partial = clients.raw(server.port)
    partial.send_raw(b'{"type": "hello"')
    start = time.monotonic()
    text_lines = expect_eof(text)
    assert any("in time" in line for line in text_lines), text_lines
    json_lines = expect_eof(partial)
    assert '"code":"timeout"' in json_lines[0].replace(" ", "")
    assert time.monotonic() - start < 4
    wait_for(lambda: len(server.door.connections) == 1, message="timed-out sessions gone")
    # registered clients have no such deadline
    request_ok(registered, {"type": "ping"}, "pong")


EVENT_TYPES = {"message", "private", "join", "part", "quit", "nick", "topic"}


def test_event_ids_strictly_increase_per_recipient(server, clients):
    # docs/protocol.md: events reach every client in id order; replies to the client's own
    # requests (joined, who, pong, errors, history) are sent at once and may overtake them.
    _, alice, bob = _id_scenario(server, clients)
    for client in (alice, bob):
        ids = [f["id"] for f in client.frames if f["type"] in EVENT_TYPES and not
               f.get("history")]
        assert len(ids) > 20
        assert all(a < b for a, b in itertools.pairwise(ids)), ids


class GatedStore:
    """The publisher's store, made to wait in `append` until the test opens the gate: the
    events accepted meanwhile then reach the publisher together, as one batch."""

    def __init__(self, store) -> None:
        self.store = store
        self.entered = threading.Event()
        self.gate = threading.Event()

    def append(self, rows) -> None:
        if rows:  # a batch of notices only (joins) stores nothing: let it through
            self.entered.set()
            self.gate.wait(10)
        self.store.append(rows)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


@contextlib.contextmanager
def publisher_held(server):
    """Hold the server's publisher in its next store write until the block ends."""
    gated = GatedStore(server.bus.store)
    server.bus.store = gated
    try:
        yield gated
    finally:
        gated.gate.set()


def test_a_batch_of_several_senders_reaches_everyone_in_order(server, clients):
    # One batch holding messages of two JSON senders and a text-mode sender, interleaved:
    # each member must get every message once, in acceptance order; JSON senders their own
    # with `ref`, the text sender none of its own (its terminal shows what it typed).
    watcher = clients.json(server.port, "watcher")
    ann = clients.json(server.port, "ann")
    bob = clients.json(server.port, "bob")
    tina = clients.text(server.port, "tina")
    wait_for(lambda: len(server.hub.rooms["lobby"].members) == 4)
    with publisher_held(server) as gated:
        watcher.send({"type": "msg", "room": "lobby", "text": "primer"})
        assert gated.entered.wait(5)  # the publisher now holds the primer, waiting
        plan = [(ann, "a1"), (bob, "b1"), (tina, "t1"), (ann, "a2"), (tina, "t2"), (bob, "b2"),
                (ann, "a3")]
        for count, (client, text) in enumerate(plan, 1):
            if client is tina:
                tina.say(text)
            else:
                client.send({"type": "msg", "room": "lobby", "text": text, "ref": text})
            wait_for(lambda count=count: server.bus.queue.qsize() == count,
                     message=f"{text} accepted")
    texts = [text for _, text in plan]
    for client in (watcher, ann, bob):
        got = [client.expect("message") for _ in range(len(plan) + 1)][1:]
        assert [frame["text"] for frame in got] == texts
        assert [frame["id"] for frame in got] == sorted(frame["id"] for frame in got)
        assert [frame["nick"] for frame in got] == [
            {"a": "ann", "b": "bob", "t": "tina"}[text[0]] for text in texts]
        own = [frame["text"] for frame in got if frame.get("ref") is not None]
        assert own == [frame["ref"] for frame in got if frame.get("ref") is not None]
        assert own == ([t for t in texts if t[0] == client.welcome["nick"][0]]
                       if client is not watcher else [])
    tina.expect("<watcher> primer")
    shown = [tina.read_until(lambda line: "<" in line) for _ in range(5)]
    assert [line.split("> ", 1)[1] for line in shown] == ["a1", "b1", "a2", "b2", "a3"]
    assert not any("t1" in line or "t2" in line for line in tina.lines)


def hello(client: JsonClient, nick: str, **fields) -> dict:
    client.send({"type": "hello", "version": PROTOCOL_VERSION, "nick": nick, **fields})
    return client.read_frame()


def test_the_resume_token_takes_a_nick_back_from_a_lingering_connection(server, clients):
    old = clients.json(server.port, "alice")
    watcher = clients.json(server.port, "watcher")
    token = old.welcome["resume"]
    assert isinstance(token, str) and len(token) >= 20
    # Anyone else, or a wrong token: the nickname is taken, as always.
    assert hello(clients.raw_json(server.port), "alice")["code"] == "nick_taken"
    assert hello(clients.raw_json(server.port), "alice", resume="x" * len(token))["code"] \
        == "nick_taken"
    assert hello(clients.raw_json(server.port), "alice", resume=7)["code"] == "nick_taken"
    # The same client again (its old connection still open here): the old one is ended.
    old_session = server.hub.nicks["alice"]
    new = clients.raw_json(server.port)
    welcome = hello(new, "ALICE", resume=token, room="lobby")
    assert welcome["type"] == "welcome" and welcome["nick"] == "ALICE"
    assert welcome["resume"] != token  # a fresh token for the new connection
    old.read_until_eof()  # the server closed the old connection (or this times out)
    assert watcher.expect("quit", nick="alice")["reason"] == "reconnected"
    watcher.expect("join", nick="ALICE")
    new.expect("joined", room="lobby")
    new.send({"type": "msg", "room": "lobby", "text": "back"})
    watcher.expect("message", nick="ALICE", text="back")
    assert [u["nick"] for u in watcher.request({"type": "who"})["users"]] == ["ALICE",
                                                                               "watcher"]
    # A line the old connection's reader thread was still handling registers nothing.
    from chatkit.protocol import FrameError
    for late in ({"type": "privmsg", "to": "watcher", "text": "late"},
                 {"type": "join", "room": "den"}, {"type": "nick", "nick": "ghost"}):
        with pytest.raises(FrameError) as refused:
            server.hub.dispatch(old_session, late)
        assert refused.value.code == "replaced"



def test_a_lone_member_who_rejoins_before_publishing_still_gets_the_echo(server, clients):
    # Alone in a room, a client sends, parts (the room is deleted) and joins again (a new room
    # of the same name) before the publisher runs: its message belongs to the old room, yet
    # the sender must still get its echo, the acceptance of what it sent.
    solo = clients.json(server.port, "solo", room="den")
    with publisher_held(server) as gated:
        solo.send({"type": "msg", "room": "den", "text": "first", "ref": "m1"})
        assert gated.entered.wait(5)
        solo.send({"type": "msg", "room": "den", "text": "second", "ref": "m2"})
        solo.send({"type": "part", "room": "den", "ref": "p1"})
        solo.send({"type": "join", "room": "den", "ref": "j1"})
        solo.expect("joined", room="den")
    echoes = [solo.expect("message") for _ in range(2)]
    assert [(e["text"], e.get("ref")) for e in echoes] == [("first", "m1"), ("second", "m2")]



def test_senders_copies_of_a_run_share_the_encoded_messages(server, clients):
    # Under the lock the publisher must not build a full copy of a run per sender: with many
    # senders and a long run of big messages that is memory and lock time a few clients can
    # drive up. A sender's copy is made of the same encoded messages everyone else gets, only
    # its own echoes (carrying ref) made apart; they are joined at delivery.
    from chatkit.protocol import encode, encode_with_ref
    from chatkit.server.bus.fanout import fan_out_run
    from chatkit.server.hub.pending import Pending

    nicks = [f"s{i}" for i in range(6)]
    for nick in [*nicks, "watcher"]:
        clients.json(server.port, nick)
    with server.hub.lock:
        senders = [server.hub.nicks[nick] for nick in nicks]
        room = server.hub.rooms["lobby"]
        run = []
        for i, s in enumerate(senders):
            id_, ts = server.hub.stamp()
            event = {"type": "message", "room": "lobby", "nick": s.nick, "text": "x" * 1000,
                     "action": False, "id": id_, "ts": ts}
            run.append(Pending(event, room, None, s, f"r{i}"))
        out: dict = {}
        fan_out_run(run, room.members.values(), out)
    encoded = [encode(p.event) for p in run]
    assert out[server.hub.nicks["watcher"]] == [b"".join(encoded)]
    for i, sender in enumerate(senders):
        expected = [encode_with_ref(e, f"r{i}") if j == i else e for j, e in enumerate(encoded)]
        assert b"".join(out[sender]) == b"".join(expected)
    held = {id(part): len(part) for parts in out.values() for part in parts}
    one_run = sum(map(len, encoded))
    # everyone's joined run + the encoded messages + one echo per sender: about 3 runs, where a
    # full copy per sender would be 7
    assert sum(held.values()) < 3.5 * one_run, (sum(held.values()), one_run)


@pytest.mark.parametrize("field", ["password", "resume", "nick"])
def test_an_unpaired_surrogate_in_hello_is_an_error_frame(server_factory, clients, field):
    # It used to reach `str.encode` (password digest, resume token) and cost the connection
    # with a traceback in the log instead of an answer.
    server = server_factory(password="sekrit")
    holder = clients.raw_json(server.port)
    assert hello(holder, "alice", password="sekrit")["type"] == "welcome"
    client = clients.raw_json(server.port)
    fields = {"type": "hello", "version": PROTOCOL_VERSION, "nick": "alice",
              "password": "sekrit", "resume": "t"}
    fields[field] = "\ud800x"  # json.dumps writes it as the escape \ud800
    client.send_raw(json.dumps(fields).encode() + b"\n")
    answer = client.read_frame()
    assert answer["type"] == "error" and answer["code"] == "bad_frame", answer
    assert hello(client, "bob", password="sekrit")["type"] == "welcome"  # still connected


def test_a_room_made_again_before_publishing_gets_the_earlier_messages(server, clients):
    # ann, alone in den, sends two messages and leaves (den is deleted) before the publisher
    # stores them; bob then makes den again. The messages are den's history, and bob's join
    # saw none of them (not yet published): he must get them live, or never at all.
    ann = clients.json(server.port, "ann", room="den")
    bob = clients.json(server.port, "bob")
    with publisher_held(server) as gated:
        ann.send({"type": "msg", "room": "den", "text": "m0", "ref": "a0"})
        assert gated.entered.wait(5)
        ann.send({"type": "msg", "room": "den", "text": "m1", "ref": "a1"})
        ann.send({"type": "part", "room": "den"})  # its answer is an event: held too
        wait_for(lambda: "den" not in server.hub.rooms, message="den deleted")
        bob.send({"type": "join", "room": "den", "ref": "j"})
        assert bob.expect("history_end", room="den")["count"] == 0
    assert [bob.expect("message", room="den")["text"] for _ in range(2)] == ["m0", "m1"]
    assert [ann.expect("message")["ref"] for _ in range(2)] == ["a0", "a1"]  # the echoes
