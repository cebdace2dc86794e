"""The client's model of the conversation, fed with server frames (no sockets)."""

from __future__ import annotations

from chatkit.client.model import ChatModel
from chatkit.protocol import COMMANDS, check_server_frame


def feed(model: ChatModel, *frames: dict, quiet: bool = False) -> None:
    for frame in frames:
        model.apply(check_server_frame(frame), quiet)  # as the connection hands them on


def joined(room: str, *members: str, topic: str | None = None) -> dict:
    return {"type": "joined", "room": room, "topic": topic, "members": list(members)}


def test_welcome_sets_nick_server_and_advertised_commands():
    model = ChatModel("alice")
    assert model.commands == list(COMMANDS)
    model.welcomed({"type": "welcome", "version": 1, "server": "office", "nick": "Alice",
                    "commands": [{"name": "dance", "usage": "/dance", "help": "dance"}],
                    "limits": {}, "id": 1, "ts": 1.0})
    assert (model.nick, model.server_name) == ("Alice", "office")
    assert [spec.name for spec in model.commands] == ["dance"]
    model.welcomed({"type": "welcome", "server": "office", "nick": "Alice", "commands": []})
    assert [spec.name for spec in model.commands] == ["dance"]  # none advertised: keep


def test_joined_members_and_current_room():
    model = ChatModel("alice")
    feed(model, joined("lobby", "alice", "bob", topic="hi"))
    assert model.current_room == "lobby" and model.rooms["lobby"].topic == "hi"
    assert model.members() == ["alice", "bob"] and model.nicks() == ["bob"]
    feed(model, joined("Dev", "alice"))
    assert model.current_room == "Dev" and model.joined_rooms() == ["lobby", "Dev"]
    feed(model, {"type": "join", "room": "dev", "nick": "carol"})
    assert model.members("DEV") == ["alice", "carol"]
    assert model.room_names() == ["Dev", "lobby"]


def test_a_quiet_rejoin_does_not_move_the_current_room():
    model = ChatModel("alice")
    feed(model, joined("lobby", "alice"), joined("dev", "alice"))
    feed(model, joined("lobby", "alice"), quiet=True)
    assert model.current_room == "dev"


def test_part_quit_nick_and_topic():
    model = ChatModel("alice")
    feed(model, joined("lobby", "alice", "bob", "carol"), joined("dev", "alice", "bob"))
    feed(model, {"type": "part", "room": "lobby", "nick": "carol", "reason": None})
    assert model.members("lobby") == ["alice", "bob"]
    feed(model, {"type": "nick", "old": "bob", "new": "robert"})
    assert model.members("lobby") == ["alice", "robert"] == model.members("dev")
    assert "bob" not in model.nicks() and "robert" in model.nicks()
    feed(model, {"type": "quit", "nick": "robert", "reason": "bye"})
    assert model.members("dev") == ["alice"] and "robert" not in model.nicks()
    feed(model, {"type": "topic", "room": "dev", "text": "builds", "nick": "alice"})
    assert model.rooms["dev"].topic == "builds"
    feed(model, {"type": "topic", "room": "dev", "text": "query", "nick": None})
    assert model.rooms["dev"].topic == "builds"  # a topic query's answer changes nothing
    feed(model, {"type": "part", "room": "dev", "nick": "alice", "reason": None})
    assert model.current_room == "lobby" and model.joined_rooms() == ["lobby"]
    feed(model, {"type": "part", "room": "lobby", "nick": "ALICE", "reason": None})
    assert model.current_room is None and model.members() == []


def test_our_own_rename_changes_our_nick():
    model = ChatModel("alice")
    feed(model, {"type": "nick", "old": "alice", "new": "alicia"})
    assert model.nick == "alicia"


def test_who_and_rooms_replace_what_we_knew():
    model = ChatModel("alice")
    feed(model, joined("lobby", "alice", "ghost"))
    feed(model, {"type": "who", "room": "lobby",
                 "users": [{"nick": "alice", "rooms": ["lobby"]},
                           {"nick": "bob", "rooms": ["lobby"]}]})
    assert model.members() == ["alice", "bob"]
    feed(model, {"type": "who", "room": None, "users": [{"nick": "zed", "rooms": []}]})
    assert model.users == {"zed": "zed"}
    feed(model, {"type": "rooms", "rooms": [{"name": "Attic", "members": 0, "topic": None}]})
    assert model.room_names() == ["Attic", "lobby"]


def test_last_message_ids_make_the_rejoin_frame():
    model = ChatModel("alice")
    feed(model, joined("lobby", "alice"))
    assert model.rejoin_frame("lobby") == {"type": "join", "room": "lobby", "history": 0}
    feed(model, {"type": "message", "room": "Lobby", "nick": "bob", "text": "hi",
                 "action": False, "id": 41, "ts": 1.0})
    assert model.last_message_ids == {"lobby": 41}
    assert model.rejoin_frame("LOBBY") == {"type": "join", "room": "LOBBY", "after": 41}
    assert "bob" in model.nicks()


def test_a_seen_topic_change_is_not_replayed_by_the_rejoin():
    model = ChatModel("alice")
    feed(model, joined("lobby", "alice", "bob"),
         {"type": "message", "room": "lobby", "nick": "bob", "text": "hi", "action": False,
          "id": 41, "ts": 1.0},
         {"type": "topic", "room": "lobby", "text": "ship it", "nick": "bob", "id": 42,
          "ts": 2.0})
    assert model.rejoin_frame("lobby") == {"type": "join", "room": "lobby", "after": 42}
    assert model.rooms["lobby"].topic == "ship it"
    # a topic query's answer is no stored event: its id does not move the rejoin point
    feed(model, {"type": "topic", "room": "lobby", "text": "ship it", "nick": None, "id": 50,
                 "ts": 3.0})
    assert model.rejoin_frame("lobby")["after"] == 42
    feed(model, {"type": "topic", "room": "lobby", "text": "old", "nick": "bob", "id": 43,
                 "ts": 2.5, "history": True})
    assert model.rejoin_frame("lobby")["after"] == 43
    assert model.rooms["lobby"].topic == "ship it"  # `joined` says the current topic


def test_completion_forgets_a_nick_renamed_away_even_after_history():
    model = ChatModel("alice")
    feed(model, joined("lobby", "alice", "bob"),
         {"type": "nick", "old": "bob", "new": "bobby", "id": 5, "ts": 1.0})
    assert model.nicks() == ["bobby"]
    # a rejoin replays what bob wrote before the rename: that names no one here now
    feed(model, {"type": "message", "room": "lobby", "nick": "bob", "text": "old line",
                 "action": False, "id": 3, "ts": 0.5, "history": True},
         {"type": "history_end", "room": "lobby", "count": 1, "more": False, "id": 6,
          "ts": 1.0})
    assert model.nicks() == ["bobby"]


def test_frames_the_model_does_not_track_change_nothing():
    model = ChatModel("alice")
    feed(model, {"type": "pong"}, {"type": "notice", "text": "x"}, {"type": "future"})
    assert model.rooms == {} and model.users == {} and model.current_room is None


def test_a_join_asks_for_one_screen_and_a_rejoin_for_nothing(monkeypatch):
    from chatkit.client import screen_history
    from chatkit.client.session import ChatSession

    assert screen_history(35) == 25 and screen_history(8) == 5
    session = ChatSession("127.0.0.1", 1, "alice", history=25)
    sent: list[dict] = []
    monkeypatch.setattr(session, "submit", lambda frame, wait=False: sent.append(frame) or "sent")
    feed(session.model, joined("lobby", "alice"))
    session.send_command("/join Lobby")
    session.send_command("/join dev")
    assert [(f["room"], f["history"]) for f in sent] == [("Lobby", 0), ("dev", 25)]
