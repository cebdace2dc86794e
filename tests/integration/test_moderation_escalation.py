"""Nobody escalates: every moderation command tried by a guest, by a registered
non-operator, by an operator of another room and by a deopped operator is refused and
changes nothing; a kicked or banned user coming back under another nickname, or another
address, gets what docs/security.md promises (and nothing more)."""

from __future__ import annotations

import json
import socket

import pytest

from helpers import JsonClient

PASSWORD = "correct horse"

#: every moderation request, as a room operator would send it for room dev
ROOM_ACTIONS: list[dict] = [
    {"action": "op", "target": "victim"}, {"action": "deop", "target": "owner"},
    {"action": "voice", "target": "victim"}, {"action": "devoice", "target": "victim"},
    {"action": "kick", "target": "victim"}, {"action": "ban", "target": "victim"},
    {"action": "unban", "target": "someone"}, {"action": "bans"},
    {"action": "mute", "target": "victim"}, {"action": "unmute", "target": "someone"},
    {"action": "invite", "target": "victim"}, {"action": "moderated", "on": True},
    {"action": "invite_only", "on": True}, {"action": "topic_lock", "on": True},
]
ADMIN_REQUESTS: list[dict] = [
    {"type": "kill", "nick": "victim"}, {"type": "wall", "text": "hi all"},
    {"type": "moderate", "action": "ban", "room": None, "target": "victim"},
    {"type": "moderate", "action": "unban", "room": None, "target": "someone"},
    {"type": "moderate", "action": "bans", "room": None},
]


def registered(port: int, nick: str, room: str = "lobby") -> JsonClient:
    client = JsonClient(port, nick, room)
    assert client.request({"type": "register", "password": PASSWORD})["type"] == "account"
    return client


def join(client: JsonClient, room: str) -> dict:
    answer = client.request({"type": "join", "room": room})
    if answer["type"] == "joined":
        client.expect("history_end")
    return answer


class FromAddress(JsonClient):
    """A JSON client connecting from another loopback address (127.0.0.2): another machine,
    as far as the server can tell."""

    def __init__(self, port: int, nick: str | None, source: str = "127.0.0.2") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.buffer, self.lines, self.frames, self.welcome = b"", [], [], None
        try:
            self.sock.bind((source, 0))
            self.sock.connect(("127.0.0.1", port))
            if nick is not None:
                self.sock.sendall(json.dumps({"type": "hello", "version": 1,
                                              "nick": nick}).encode() + b"\n")
                self.welcome = self.expect("welcome")
                self.expect("history_end")
        except BaseException:
            self.sock.close()
            raise


@pytest.fixture
def world(server):
    """owner founds dev, with victim (a guest) in it; other founds its own room, elsewhere."""
    owner = registered(server.port, "owner")
    join(owner, "dev")
    victim = JsonClient(server.port, "victim")
    join(victim, "dev")
    other = registered(server.port, "other")
    join(other, "elsewhere")
    state = {"server": server, "owner": owner, "victim": victim, "other": other}
    yield state
    for client in state.values():
        if isinstance(client, JsonClient):
            client.close()


def assert_refused_everything(client: JsonClient, world: dict) -> None:
    owner, victim = world["owner"], world["victim"]
    for action in ROOM_ACTIONS:
        answer = client.request({"type": "moderate", "room": "dev", **action})
        assert answer["type"] == "error", (action, answer)
        assert answer["code"] in ("not_operator", "no_such_room"), (action, answer)
        line = client.request({"type": "command", "line": f"/{action['action']}"})
        assert line["type"] == "error"
    for request in ADMIN_REQUESTS:
        answer = client.request(request)
        assert answer["type"] == "error" and answer["code"] == "not_operator", (request, answer)
    # nothing changed: the victim still talks in dev, the owner is still founder
    assert victim.request({"type": "msg", "room": "dev", "text": "still here"})["type"] == \
        "message"
    who = owner.request({"type": "who", "room": "dev"})
    assert {u["nick"]: u.get("roles") for u in who["users"]}["owner"] == ["founder"]
    assert not world["server"].hub.moderation.sanctions


def test_a_guest_cannot_moderate(world) -> None:
    guest = JsonClient(world["server"].port, "guest")
    join(guest, "dev")
    assert_refused_everything(guest, world)
    guest.close()


def test_a_registered_non_operator_cannot_moderate(world) -> None:
    member = registered(world["server"].port, "member")
    join(member, "dev")
    assert_refused_everything(member, world)
    member.close()


def test_an_operator_of_another_room_cannot_moderate_this_one(world) -> None:
    other = world["other"]
    join(other, "dev")
    assert other.request({"type": "moderate", "action": "kick", "room": "elsewhere",
                          "target": "other"})["code"] == "bad_target"  # its own room: op
    assert_refused_everything(other, world)


def test_a_deopped_operator_cannot_moderate(world) -> None:
    owner = world["owner"]
    helper = registered(world["server"].port, "helper")
    join(helper, "dev")
    owner.request({"type": "moderate", "action": "op", "room": "dev", "target": "helper"})
    owner.request({"type": "moderate", "action": "deop", "room": "dev", "target": "helper"})
    assert_refused_everything(helper, world)
    helper.close()


def test_a_guest_cannot_claim_a_role_by_taking_a_name(world) -> None:
    server = world["server"]
    world["owner"].close()
    impostor = JsonClient(server.port)
    impostor.send({"type": "hello", "version": 1, "nick": "owner"})
    assert impostor.expect("error")["code"] == "nick_registered"
    impostor.send({"type": "hello", "version": 1, "nick": "owner", "identify": "guessing"})
    assert impostor.expect("error")["code"] == "bad_login"
    impostor.close()


def test_a_kicked_user_may_come_back_but_a_banned_one_may_not(world) -> None:
    server, owner, victim = world["server"], world["owner"], world["victim"]
    owner.request({"type": "moderate", "action": "kick", "room": "dev", "target": "victim"})
    victim.expect("part")
    assert join(victim, "dev")["type"] == "joined"  # a kick is no ban
    owner.request({"type": "moderate", "action": "ban", "room": "dev", "target": "victim"})
    victim.expect("part")
    # another nickname, same address: still banned (the ban covered the guest's address)
    victim.request({"type": "nick", "nick": "newname"})
    assert join(victim, "dev")["code"] == "banned"
    # a new connection, a new nickname, same address: banned
    again = JsonClient(server.port, "third")
    assert join(again, "dev")["code"] == "banned"
    again.close()
    # another address and another nickname: a ban by address cannot follow (documented)
    elsewhere = FromAddress(server.port, "fresh")
    assert join(elsewhere, "dev")["type"] == "joined"
    elsewhere.close()


def test_a_ban_by_account_follows_the_account_to_another_address(world) -> None:
    server, owner = world["server"], world["owner"]
    troll = registered(server.port, "troll")
    join(troll, "dev")
    owner.request({"type": "moderate", "action": "ban", "room": "dev", "target": "troll"})
    troll.close()
    moved = FromAddress(server.port, "trollish")
    assert moved.request({"type": "identify", "account": "troll",
                          "password": PASSWORD})["type"] == "account"
    assert join(moved, "dev")["code"] == "banned"
    moved.close()


def test_a_server_ban_keeps_a_name_out(server_factory) -> None:
    server = server_factory(admins=("root",))
    root = registered(server.port, "root")
    server.reload()
    root.request({"type": "identify", "password": PASSWORD})
    pest = FromAddress(server.port, "pest")
    root.request({"type": "moderate", "action": "ban", "room": None, "target": "pest"})
    assert pest.read_until_eof() is not None  # disconnected at once
    pest.close()
    again = FromAddress(server.port, None)  # the address is banned too, whatever the name
    again.send({"type": "hello", "version": 1, "nick": "pest2"})
    assert again.expect("error")["code"] == "banned"
    again.close()
    root.close()
