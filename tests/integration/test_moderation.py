"""Room moderation through real connections: the founder is operator; op/deop, kick,
ban/unban/bans (by nick, account, address, with a duration), mute/unmute, moderated,
invite-only + invite, topic lock; admins' kill, server bans and wall; every action a notice
in the room, stored, and marked in /who."""

from __future__ import annotations

import pytest

from chatkit.store import read_history

from helpers import JsonClient, TextClient

PASSWORD = "correct horse"


def account(port: int, nick: str, room: str | None = "lobby") -> JsonClient:
    """A client that registered `nick`."""
    client = JsonClient(port, nick, room)
    answer = client.request({"type": "register", "password": PASSWORD})
    assert answer["type"] == "account", answer
    return client


def mod(client: JsonClient, action: str, room: str | None = "dev", **fields) -> dict:
    return client.request({"type": "moderate", "action": action, "room": room, **fields})


def joined(client: JsonClient, room: str = "dev") -> dict:
    answer = client.request({"type": "join", "room": room})
    if answer["type"] == "joined":
        client.expect("history_end")
    return answer


@pytest.fixture
def room(server):
    """alice (registered) founds dev; bob (guest) and carol (registered) join it."""
    alice = account(server.port, "alice")
    joined(alice)
    bob = JsonClient(server.port, "bob")
    joined(bob)
    carol = account(server.port, "carol")
    joined(carol)
    yield server, alice, bob, carol
    for client in (alice, bob, carol):
        client.close()


def test_founder_is_operator_and_who_marks_it(room) -> None:
    server, alice, bob, carol = room
    who = alice.request({"type": "who", "room": "dev"})
    roles = {u["nick"]: u.get("roles", []) for u in who["users"]}
    assert roles == {"alice": ["founder"], "bob": [], "carol": []}
    # the founder's command list now has the operator commands
    assert any(c["name"] == "kick" for c in alice.request({"type": "help"})["commands"])
    assert not any(c["name"] == "kick" for c in bob.request({"type": "help"})["commands"])


def test_op_then_deop_and_the_notices(room) -> None:
    server, alice, bob, carol = room
    notice = mod(alice, "op", target="carol")
    assert notice["type"] == "notice" and notice["text"] == "alice made carol an operator of dev"
    assert bob.expect("notice", action="op")["by"] == "alice"
    assert carol.expect("account", event="roles")
    assert mod(carol, "kick", target="bob", reason="test")["action"] == "kick"
    assert bob.expect("part")["reason"] == "kicked by carol (test)"
    mod(alice, "deop", target="carol")
    assert mod(carol, "moderated", on=True)["code"] == "not_operator"
    assert mod(bob, "op", target="carol")["code"] == "not_operator"  # bob is no operator
    assert mod(alice, "op", target="bob")["code"] == "no_account"  # roles go to accounts


def test_ban_by_nick_covers_the_address_of_a_guest(room) -> None:
    server, alice, bob, carol = room
    notice = mod(alice, "ban", target="bob", duration=600, reason="spam")
    assert notice["text"] == "alice banned bob from dev for 10 minutes (spam)"
    assert bob.expect("part")["reason"] == "banned by alice (spam)"
    assert joined(bob)["code"] == "banned"
    # another nickname from the same address is still banned (tests share 127.0.0.1)
    bob.request({"type": "nick", "nick": "bobby"})
    assert joined(bob)["code"] == "banned"
    bans = mod(alice, "bans")["bans"]
    assert {(b["what"], b["kind"], b["value"]) for b in bans} == {
        ("ban", "nick", "bob"), ("ban", "address", "127.0.0.1")}
    assert mod(alice, "unban", target="bob")["text"] == "alice lifted the ban of bob in dev"
    assert joined(bob)["type"] == "joined"


def test_ban_by_account_follows_the_account(room) -> None:
    server, alice, bob, carol = room
    mod(alice, "ban", target="carol")
    assert carol.expect("part")["nick"] == "carol"
    assert joined(carol)["code"] == "banned"
    carol.request({"type": "nick", "nick": "caroline"})
    assert joined(carol)["code"] == "banned"  # still logged in to carol
    assert mod(alice, "unban", target="nobody")["code"] == "no_such_ban"
    ban_id = next(b["id"] for b in mod(alice, "bans")["bans"] if b["kind"] == "account")
    mod(alice, "unban", target=f"#{ban_id}")
    mod(alice, "unban", target="carol")
    assert joined(carol)["type"] == "joined"


def test_mute_and_unmute(room) -> None:
    server, alice, bob, carol = room
    assert mod(alice, "mute", target="bob", duration=60)["action"] == "mute"
    assert bob.request({"type": "msg", "room": "dev", "text": "hi"})["code"] == "muted"
    assert bob.request({"type": "topic", "room": "dev", "text": "x"})["code"] == "muted"
    assert bob.request({"type": "msg", "room": "lobby", "text": "hi"})["type"] == "message"
    mod(alice, "unmute", target="bob")
    assert bob.request({"type": "msg", "room": "dev", "text": "hi"})["type"] == "message"


def test_moderated_room_and_voice(room) -> None:
    server, alice, bob, carol = room
    mod(alice, "moderated", on=True)
    assert carol.request({"type": "msg", "room": "dev", "text": "hi"})["code"] == "moderated"
    mod(alice, "voice", target="carol")
    assert carol.request({"type": "msg", "room": "dev", "text": "hi"})["type"] == "message"
    assert alice.request({"type": "msg", "room": "dev", "text": "op"})["type"] == "message"
    mod(alice, "moderated", on=False)
    assert bob.request({"type": "msg", "room": "dev", "text": "hi"})["type"] == "message"


def test_invite_only_and_invite(room) -> None:
    server, alice, bob, carol = room
    mod(alice, "invite_only", on=True)
    bob.request({"type": "part", "room": "dev"})
    assert joined(bob)["code"] == "invite_only"
    mod(alice, "invite", target="bob")
    assert bob.expect("notice", action="invite")["text"] == "alice invited bob to dev"
    assert joined(bob)["type"] == "joined"
    bob.request({"type": "part", "room": "dev"})
    assert joined(bob)["code"] == "invite_only"  # an invitation is for one join


def test_topic_lock(room) -> None:
    server, alice, bob, carol = room
    mod(alice, "topic_lock", on=True)
    assert bob.request({"type": "topic", "room": "dev", "text": "x"})["code"] == \
        "not_operator"
    assert alice.request({"type": "topic", "room": "dev", "text": "ok"})["type"] == "topic"


def test_operators_cannot_touch_the_founder_or_admins(room) -> None:
    server, alice, bob, carol = room
    mod(alice, "op", target="carol")
    assert mod(carol, "kick", target="alice")["code"] == "not_operator"
    assert mod(carol, "ban", target="alice")["code"] == "not_operator"
    assert mod(carol, "deop", target="alice")["code"] == "not_operator"
    assert mod(carol, "kick", target="carol")["code"] == "bad_target"


def test_text_mode_operator_commands(server) -> None:
    alice = account(server.port, "alice")
    joined(alice)
    nc = TextClient(server.port, "dan")
    nc.say("/join dev")
    nc.expect("you joined dev")
    nc.say("/kick alice")
    nc.expect("!!! you are not an operator of dev")
    alice.request({"type": "command", "line": "/mute dan 5m flooding"})
    nc.expect("*** alice muted dan in dev for 5 minutes (flooding)")
    nc.say("hello?")
    nc.expect("!!! you are muted in dev for")
    nc.say("/who dev")
    assert nc.expect(" in dev: ") == "*** 2 in dev: @alice, dan"
    nc.close()
    alice.close()


def test_admin_kill_wall_and_server_ban(server_factory) -> None:
    server = server_factory(admins=("root",))
    root = JsonClient(server.port, "root")
    answer = root.request({"type": "register", "password": PASSWORD})
    assert answer["admin"] is False  # not yet: --admin is read...
    server.reload()  # ... at start and on SIGHUP, for registered accounts
    root.request({"type": "identify", "password": PASSWORD})
    assert root.frames[-1]["admin"] is True
    who = root.request({"type": "who"})
    assert who["users"][0]["roles"] == ["admin"]
    eve = JsonClient(server.port, "eve")
    assert eve.request({"type": "wall", "text": "x"})["code"] == "not_operator"
    assert eve.request({"type": "kill", "nick": "root"})["code"] == "not_operator"
    assert mod(eve, "ban", None, target="root")["code"] == "not_operator"
    root.request({"type": "wall", "text": "maintenance at noon"})
    assert eve.expect("notice", action="wall")["text"] == "[root to everyone] maintenance at noon"
    root.request({"type": "kill", "nick": "eve", "reason": "go away"})
    assert eve.read_until_eof() is not None
    eve.close()
    # a server ban keeps an address out whatever the nickname
    mod(root, "ban", None, target="203.0.113.9", reason="test")
    bans = mod(root, "bans", None)["bans"]
    assert bans[0]["kind"] == "address" and bans[0]["value"] == "203.0.113.9"
    mod(root, "unban", None, target="203.0.113.9")
    root.close()


def test_moderation_is_stored_and_readable(server_factory, tmp_path) -> None:
    db = tmp_path / "log.db"
    server = server_factory(db=str(db))
    alice = account(server.port, "alice")
    joined(alice)
    bob = JsonClient(server.port, "bob")
    joined(bob)
    mod(alice, "kick", target="bob", reason="off topic")
    rows = [r for r in read_history(db, kind="moderation")]
    assert [(r.room, r.nick, r.target, r.text) for r in rows] == [
        ("dev", "alice", "bob", "alice kicked bob from dev (off topic)")]
    # and comes back as history to whoever joins
    carol = JsonClient(server.port, "carol")
    carol.send({"type": "join", "room": "dev"})
    notice = carol.expect("notice", history=True)
    assert notice["text"] == "alice kicked bob from dev (off topic)"
    for client in (alice, bob, carol):
        client.close()
