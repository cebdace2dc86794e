"""Crowds (docs/protocol.md, "Crowds"): above `crowd_size` members a room hears of arrivals and
departures in a `presence` summary instead of one event each, joiners get part of the member
list with the count, and `/who ROOM` still lists everyone. Real server, real sockets."""

from __future__ import annotations

import pytest

from chatkit.client.model import ChatModel
from chatkit.protocol import check_server_frame

from helpers import JsonClient, TextClient

CROWD = 3  # a room of 4 or more is a crowd here


@pytest.fixture
def crowd_server(server_factory):
    return server_factory(crowd_size=CROWD)




def join(port: int, nick: str, opened: list) -> JsonClient:
    client = JsonClient(port, nick)
    opened.append(client)
    return client


def frames_of(client: JsonClient, kind: str) -> list[dict]:
    return [frame for frame in client.frames if frame["type"] == kind]


def test_a_small_room_announces_each_join_as_before(crowd_server, opened):
    alice = join(crowd_server.port, "alice", opened)
    join(crowd_server.port, "bob", opened)
    join(crowd_server.port, "carol", opened)
    assert alice.expect("join", nick="bob") and alice.expect("join", nick="carol")
    assert frames_of(alice, "joined")[0]["count"] == 1
    assert not frames_of(alice, "joined")[0].get("partial")


def test_arrivals_and_departures_in_a_crowd_come_as_one_summary(crowd_server, opened):
    alice = join(crowd_server.port, "alice", opened)
    for nick in ("bob", "carol"):
        join(crowd_server.port, nick, opened)
    alice.expect("join", nick="carol")
    dave = join(crowd_server.port, "dave", opened)  # the 4th: the room is now a crowd
    erin = join(crowd_server.port, "erin", opened)

    joined = frames_of(erin, "joined")[0]
    assert joined["count"] == 5 and joined["partial"] is True
    assert len(joined["members"]) == CROWD and "erin" in joined["members"]

    presence = alice.expect("presence", timeout=10)
    assert presence["room"] == "lobby" and presence["count"] == 5
    assert sorted(presence["joined"]) == ["dave", "erin"] and presence["left"] == []
    assert (presence["joined_count"], presence["left_count"]) == (2, 0)
    assert not [f for f in alice.frames if f["type"] == "join" and f["nick"] in ("dave", "erin")]

    dave.send({"type": "quit"})
    dave.expect("bye")
    erin.send({"type": "part", "room": "lobby"})
    erin.expect("part", nick="erin")  # the leaver hears its own part at once
    presence = alice.expect("presence", timeout=10, left_count=2)
    assert sorted(presence["left"]) == ["dave", "erin"] and presence["count"] == 3
    assert not [f for f in alice.frames if f["type"] in ("quit", "part")]


def test_who_lists_everyone_in_a_crowd(crowd_server, opened):
    clients = [join(crowd_server.port, f"user{i}", opened) for i in range(6)]
    last = clients[-1]
    assert frames_of(last, "joined")[0]["partial"] is True
    who = last.request({"type": "who", "room": "lobby"})
    assert sorted(u["nick"] for u in who["users"]) == [f"user{i}" for i in range(6)]


def test_the_client_model_keeps_count_and_names_right(crowd_server, opened):
    """The frames a crowd sends, folded into the terminal client's (and the GUI's) model."""
    watcher = join(crowd_server.port, "watcher", opened)
    model = ChatModel("watcher")
    for frame in watcher.frames:
        model.apply(check_server_frame(frame))
    seen = len(watcher.frames)
    others = [join(crowd_server.port, f"p{i}", opened) for i in range(4)]
    # p2 and p3 arrive in the crowd: one summary, or two if the first went out between them
    if len(watcher.expect("presence", timeout=10)["joined"]) < 2:
        watcher.expect("presence", timeout=10)
    for frame in watcher.frames[seen:]:
        model.apply(check_server_frame(frame))
    assert model.member_count("lobby") == 5
    assert model.members("lobby") == sorted(["watcher", "p0", "p1", "p2", "p3"])
    assert model.members_complete("lobby")

    newcomer = join(crowd_server.port, "newcomer", opened)
    late = ChatModel("newcomer")
    for frame in newcomer.frames:
        late.apply(check_server_frame(frame))
    assert late.member_count("lobby") == 6 and not late.members_complete("lobby")
    assert len(late.members("lobby")) == CROWD
    late.apply(check_server_frame(newcomer.request({"type": "who", "room": "lobby"})))
    assert late.members_complete("lobby") and len(late.members("lobby")) == 6
    del others


def test_a_text_user_sees_a_readable_summary(crowd_server, opened):
    tom = TextClient(crowd_server.port, "tom")
    opened.append(tom)
    for nick in ("ann", "bo", "cy", "di"):
        join(crowd_server.port, nick, opened)
    line = tom.expect("joined:", timeout=10)
    assert "lobby:" in line and "here)" in line


def test_a_nick_change_before_the_summary_is_named_by_the_new_nick(crowd_server, opened):
    for nick in ("a1", "a2", "a3"):
        join(crowd_server.port, nick, opened)
    watcher = opened[0]
    late = join(crowd_server.port, "late", opened)
    late.request({"type": "nick", "nick": "renamed"})
    presence = watcher.expect("presence", timeout=10)
    assert presence["joined"] == ["renamed"]
