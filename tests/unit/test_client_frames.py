"""Server frames are checked once, on arrival: every documented frame passes, a malformed one
of a known type is rejected (and so never reaches the model or a renderer)."""

from __future__ import annotations

import pytest

from chatkit.protocol import FrameError, check_server_frame

TS = 1_764_000_000.123
COMMANDS = [{"name": "join", "usage": "/join ROOM", "help": "join a room"}]

#: One example of each frame in docs/protocol.md, "Server → client frames" (and the welcome of
#: "Handshake"), as a server sends it: every frame carries `id` and `ts`.
DOCUMENTED = [
    {"type": "welcome", "version": 1, "server": "office", "nick": "alice",
     "commands": COMMANDS,
     "limits": {"max_frame": 8192, "max_text": 2000, "max_nick": 24, "max_room": 32},
     "resume": "token"},
    {"type": "joined", "room": "lobby", "topic": None, "members": ["alice", "bob"]},
    {"type": "joined", "room": "lobby", "topic": "release", "members": []},
    {"type": "message", "room": "lobby", "nick": "bob", "text": "hi", "action": False},
    {"type": "message", "room": "lobby", "nick": "bob", "text": "waves", "action": True,
     "history": True},
    {"type": "private", "from": "bob", "to": "alice", "text": "psst"},
    {"type": "join", "room": "lobby", "nick": "bob"},
    {"type": "part", "room": "lobby", "nick": "bob", "reason": None},
    {"type": "part", "room": "lobby", "nick": "bob", "reason": "bye"},
    {"type": "quit", "nick": "bob", "reason": "gone home"},
    {"type": "nick", "old": "bob", "new": "robert"},
    {"type": "topic", "room": "lobby", "text": "release on Friday", "nick": "alice"},
    {"type": "topic", "room": "lobby", "text": None, "nick": None},
    {"type": "topic", "room": "lobby", "text": "old", "nick": "alice", "history": True},
    {"type": "who", "room": None, "users": [{"nick": "bob", "rooms": ["lobby"]}]},
    {"type": "who", "room": "lobby", "users": [{"nick": "bob", "rooms": []}]},
    {"type": "rooms", "rooms": [{"name": "lobby", "members": 2, "topic": None},
                                {"name": "dev", "members": 1, "topic": "builds"}]},
    {"type": "help", "commands": COMMANDS},
    {"type": "history_end", "room": "lobby", "count": 0, "more": False},
    {"type": "notice", "text": "shutting down"},
    {"type": "pong"},
    {"type": "bye", "reason": "server shutting down"},
    {"type": "error", "code": "nick_taken", "message": "nick taken: bob", "ref": "r1"},
]


@pytest.mark.parametrize("frame", DOCUMENTED, ids=lambda frame: frame["type"])
def test_every_documented_frame_passes(frame):
    stamped = {**frame, "id": 17, "ts": TS}
    assert check_server_frame(stamped) is stamped
    if not frame.get("history"):  # a replayed event is shown with its time: ts is needed
        assert check_server_frame(dict(frame)) == frame  # else id and ts are not


def test_unknown_types_and_fields_pass():
    assert check_server_frame({"type": "future", "anything": [1, {"x": None}]})
    assert check_server_frame({"type": "join", "room": "a", "nick": "b", "extra": {"y": 1}})


@pytest.mark.parametrize("frame, field", [
    ({"type": "message", "room": "lobby", "text": "hi"}, "nick"),
    ({"type": "message", "room": "lobby", "nick": 5, "text": "hi"}, "nick"),
    ({"type": "who", "room": None, "users": [{"nick": 5, "rooms": []}]}, "users[].nick"),
    ({"type": "who", "users": [{"nick": "bob", "rooms": [1]}]}, "users[].rooms[]"),
    ({"type": "who", "users": ["bob"]}, "users"),
    ({"type": "joined", "room": "lobby", "members": "x"}, "members"),
    ({"type": "joined", "room": "lobby", "members": [None]}, "members"),
    ({"type": "rooms", "rooms": [{"name": "a", "members": "2"}]}, "rooms[].members"),
    ({"type": "nick", "old": "bob"}, "new"),
    ({"type": "join", "nick": "bob"}, "room"),
    ({"type": "error", "code": "x"}, "message"),
    ({"type": "welcome", "server": "s"}, "nick"),
    ({"type": "welcome", "server": "s", "nick": "a", "commands": "all"}, "commands"),
    ({"type": "welcome", "server": "s", "nick": "a", "commands": [5]}, "commands"),
    ({"type": "history_end", "room": "a", "count": True}, "count"),
    ({"type": "message", "room": "a", "nick": "b", "text": "c", "id": "7"}, "id"),
    ({"type": "message", "room": "a", "nick": "b", "text": "c", "history": True}, "ts"),
    ({"type": "topic", "room": "a", "text": "c", "history": True, "ts": TS}, "nick"),
])
def test_malformed_frames_of_known_types_are_rejected(frame, field):
    with pytest.raises(FrameError) as caught:
        check_server_frame(frame)
    assert caught.value.code == "bad_frame" and field in caught.value.message


def test_a_moderation_notice_passes_and_its_fields_are_checked():
    """A moderation notice's `action` names what was done: it was dropped as malformed by
    every chatkit client, and by the other nodes of a cluster, because a message's `action`
    is a boolean."""
    notice = {"type": "notice", "text": "alice kicked bob from den: too loud", "room": "den",
              "action": "kick", "by": "alice", "target": "bob", "id": 3, "ts": TS}
    assert check_server_frame(dict(notice)) == notice
    for field, bad in (("action", True), ("by", 5), ("target", ["bob"])):
        with pytest.raises(FrameError, match=field):
            check_server_frame({**notice, field: bad})
    with pytest.raises(FrameError, match="action"):
        check_server_frame({"type": "message", "room": "a", "nick": "b", "text": "c",
                            "action": "kick"})


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), -1.0, 1e300, 10**400])
def test_a_timestamp_no_clock_can_show_is_rejected(ts):
    # Shown with time.localtime: NaN, infinity or year 10^292 would raise there.
    with pytest.raises(FrameError, match="'ts'"):
        check_server_frame({"type": "notice", "text": "x", "ts": ts})
