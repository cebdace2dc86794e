"""Several nodes of one cluster, one Redis (the test's own): one chat.

Nodes run in this process (real sockets on 127.0.0.1, a real redis-server); the tests that kill
a node or Redis are in test_cluster_failures.py.
"""

from __future__ import annotations

import threading

import pytest

from chatkit.errors import ChatkitError
from chatkit.server import Server, ServerConfig

from helpers import JsonClient, wait_for


def client(opened: list, node: Server, nick: str, **kwargs) -> JsonClient:
    joined = JsonClient(node.port, nick, **kwargs)
    opened.append(joined)
    return joined


def test_a_line_sent_on_one_node_reaches_people_on_the_others(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    alice, bob = client(opened, a, "alice"), client(opened, b, "bob")
    alice.expect("join", nick="bob")
    echo = bob.request({"type": "msg", "room": "lobby", "text": "hello across"})
    heard = alice.expect("message", text="hello across")
    assert echo["id"] == heard["id"] and heard["nick"] == "bob"


def test_every_member_sees_one_order_with_the_same_ids(cluster, opened):
    nodes = [cluster(tls=False) for _ in range(3)]
    listeners = [client(opened, node, f"ear{i}") for i, node in enumerate(nodes)]
    senders = [client(opened, node, f"mouth{i}") for i, node in enumerate(nodes)]
    per_sender = 60

    def talk(sender: JsonClient, n: int) -> None:
        for k in range(per_sender):
            sender.send({"type": "msg", "room": "lobby", "text": f"{n}:{k}"})

    threads = [threading.Thread(target=talk, args=(s, n)) for n, s in enumerate(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    seen = []
    for listener in listeners:
        lines = []
        while len(lines) < 3 * per_sender:
            frame = listener.expect("message")
            lines.append((frame["id"], frame["nick"], frame["text"]))
        seen.append(lines)
    assert seen[0] == seen[1] == seen[2]
    ids = [line[0] for line in seen[0]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for n in range(3):  # each sender's own lines in the order it sent them
        assert [t for _, nick, t in seen[0] if nick == f"mouth{n}"] == \
            [f"{n}:{k}" for k in range(per_sender)]


def test_two_nodes_claiming_one_nick_at_once_exactly_one_wins(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    for round_ in range(15):
        nick = f"race{round_}"
        results: dict[str, dict] = {}
        threads = [threading.Thread(target=_claim, args=(opened, node, nick, results, name))
                   for node, name in ((a, "a"), (b, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        kinds = sorted(results[name]["type"] for name in ("a", "b"))
        assert kinds == ["error", "welcome"], results
        assert "nick_taken" in (results["a"].get("code"), results["b"].get("code"))


def _claim(opened: list, node: Server, nick: str, results: dict, name: str) -> None:
    conn = JsonClient(node.port)
    opened.append(conn)
    conn.send({"type": "hello", "version": 1, "nick": nick, "room": None})
    results[name] = conn.read_frame() or {"type": None}


def test_private_messages_reach_a_nick_on_another_node(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    alice, bob = client(opened, a, "alice", room=None), client(opened, b, "bob", room=None)
    wait_for(lambda: any(u["nick"] == "alice" for u in
                         bob.request({"type": "who"})["users"]), message="alice seen on b")
    sent = bob.request({"type": "privmsg", "to": "alice", "text": "psst"})
    got = alice.expect("private", text="psst")
    assert sent["id"] == got["id"] and got["from"] == "bob"


def test_who_and_rooms_show_everyone_on_every_node(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    client(opened, a, "alice", room="kitchen")
    bob = client(opened, b, "bob")

    def views():
        who = {u["nick"]: u["rooms"] for u in bob.request({"type": "who"})["users"]}
        rooms = {r["name"]: r["members"] for r in bob.request({"type": "rooms"})["rooms"]}
        return who, rooms

    def seen():
        who, rooms = views()
        return (who, rooms) if "alice" in who else None

    who, rooms = wait_for(seen, message="alice seen on the other node")
    assert who == {"alice": ["kitchen"], "bob": ["lobby"]}
    assert rooms["kitchen"] == 1 and rooms["lobby"] == 1


def test_history_on_join_and_gap_fill_come_from_the_cluster(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    alice = client(opened, a, "alice", room="den")
    ids = [alice.request({"type": "msg", "room": "den", "text": f"line {i}"})["id"]
           for i in range(5)]
    bob = JsonClient(b.port)
    opened.append(bob)
    bob.send({"type": "hello", "version": 1, "nick": "bob", "room": None})
    bob.expect("welcome")
    bob.send({"type": "join", "room": "den", "history": 3})
    bob.expect("joined")
    history = [bob.expect("message") for _ in range(3)]
    assert [m["text"] for m in history] == ["line 2", "line 3", "line 4"]
    assert all(m.get("history") for m in history)
    bob.expect("history_end", count=3)
    # gap fill on yet another node: exactly what came after the last id seen
    c = cluster(tls=False)
    carol = JsonClient(c.port)
    opened.append(carol)
    carol.send({"type": "hello", "version": 1, "nick": "carol", "room": None})
    carol.expect("welcome")
    carol.send({"type": "join", "room": "den", "after": ids[1]})
    carol.expect("joined")
    replay = [carol.expect("message")["id"] for _ in range(3)]
    assert replay == ids[2:]
    carol.expect("history_end", count=3)


def test_a_node_started_late_knows_the_rooms_people_and_topics(cluster, opened):
    a = cluster(tls=False)
    alice = client(opened, a, "alice", room="porch")
    alice.request({"type": "topic", "room": "porch", "text": "sunsets"})
    late = cluster(tls=False)
    dave = client(opened, late, "dave", room=None)
    rooms = {r["name"]: r for r in dave.request({"type": "rooms"})["rooms"]}
    assert rooms["porch"]["members"] == 1 and rooms["porch"]["topic"] == "sunsets"
    joined = dave.request({"type": "join", "room": "porch"})
    assert joined["topic"] == "sunsets" and set(joined["members"]) == {"alice", "dave"}
    # and a topic changed later reaches it too, in the room and for the next joiner
    alice.request({"type": "topic", "room": "porch", "text": "rain"})
    assert dave.expect("topic", text="rain")["nick"] == "alice"


def test_a_nick_change_is_seen_and_frees_the_old_nick_everywhere(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    alice, bob = client(opened, a, "alice"), client(opened, b, "bob")
    alice.expect("join", nick="bob")
    alice.request({"type": "nick", "nick": "alicia"})
    assert bob.expect("nick", old="alice")["new"] == "alicia"
    other = client(opened, b, "alice")  # the old nick is free on the other node
    assert other.welcome["nick"] == "alice"
    refused = bob.request({"type": "nick", "nick": "alicia"})
    assert refused["type"] == "error" and refused["code"] == "nick_taken"


def test_a_client_that_leaves_is_seen_leaving_and_its_nick_is_free(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    alice, bob = client(opened, a, "alice"), client(opened, b, "bob")
    alice.expect("join", nick="bob")
    alice.send({"type": "quit", "reason": "lunch"})
    assert bob.expect("quit", nick="alice")["reason"] == "lunch"
    again = client(opened, b, "alice")
    assert again.welcome["nick"] == "alice"


def test_welcome_names_the_cluster_and_its_nodes(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    alice = client(opened, b, "alice")
    view = alice.welcome["cluster"]
    assert view["node"] in {n["id"] for n in view["nodes"]}
    ports = {address.rsplit(":", 1)[1] for n in view["nodes"] for address in n["addresses"]}
    assert {str(a.port), str(b.port)} <= ports
    assert a.info()["cluster"] == b.info()["cluster"] == "test"
    assert a.info()["node"] != b.info()["node"]


def test_a_node_whose_redis_is_unreachable_fails_at_start_in_one_line(tmp_path):
    config = ServerConfig(host="127.0.0.1", port=0, tls=False,
                          cluster="redis://:hunter2@127.0.0.1:9/0")
    with pytest.raises(ChatkitError) as caught:
        Server(config)
    message = str(caught.value)
    assert "127.0.0.1:9" in message and "\n" not in message
    assert "hunter2" not in message  # never the password


def _registered(opened: list, node: Server, nick: str, room: str | None = None
                ) -> JsonClient:
    member = client(opened, node, nick, room=None)
    answer = member.request({"type": "register", "password": "correct horse battery"})
    assert answer["type"] != "error", answer
    if room is not None:
        member.request({"type": "join", "room": room})
    return member


def test_an_account_registered_on_one_node_is_known_on_every_node(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    alice = _registered(opened, a, "alice")
    alice.send({"type": "quit"})
    alice.expect("bye")

    def guest_refused() -> dict | None:
        guest = JsonClient(b.port)
        opened.append(guest)
        guest.send({"type": "hello", "version": 1, "nick": "alice", "room": None})
        answer = guest.read_frame()
        if answer and answer["type"] == "welcome":  # b had not heard of it yet: let go
            guest.send({"type": "quit"})
            guest.expect("bye")
        return answer if answer and answer.get("code") == "nick_registered" else None

    wait_for(guest_refused, message="alice's account known on node b")
    owner = JsonClient(b.port)
    opened.append(owner)
    owner.send({"type": "hello", "version": 1, "nick": "alice", "room": None,
                "identify": "correct horse battery"})
    assert owner.expect("welcome")["nick"] == "alice"  # her password, on the other node


def test_an_operator_kicks_and_bans_someone_on_another_node(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    alice = _registered(opened, a, "alice", room="den")  # founder of den: an operator there
    bob = JsonClient(b.port)
    opened.append(bob)
    bob.send({"type": "hello", "version": 1, "nick": "bob", "room": "den"})
    bob.expect("history_end")
    alice.expect("join", nick="bob")
    carol = client(opened, b, "carol")  # in den on bob's node, to see what is done there
    carol.request({"type": "join", "room": "den"})
    alice.expect("join", nick="carol")
    kicked = alice.request({"type": "command", "line": "/kick bob too loud"})
    assert kicked["type"] == "notice" and kicked.get("action") == "kick", kicked
    part = bob.expect("part", nick="bob")
    assert "kicked by alice" in part["reason"]
    alice.expect("part", nick="bob")
    # the notice reaches den on the other node, and is in den's history there (from Redis)
    seen = carol.expect("notice", action="kick")
    assert (seen["by"], seen["target"], seen["id"]) == ("alice", "bob", kicked["id"])
    carol.send({"type": "history", "room": "den"})
    stored = carol.expect("notice", history=True)
    assert (stored["by"], stored["target"], stored["id"]) == ("alice", "bob", kicked["id"])
    carol.request({"type": "part", "room": "den"})  # out of the way of the ban below
    alice.expect("part", nick="carol")
    who = {u["nick"] for u in alice.request({"type": "who", "room": "den"})["users"]}
    assert who == {"alice"}
    # a ban given on node a keeps bob out of den on node b
    bob.request({"type": "join", "room": "den"})
    alice.expect("join", nick="bob")
    banned = alice.request({"type": "command", "line": "/ban bob"})
    assert banned["type"] == "notice", banned
    bob.expect("part", nick="bob")
    again = bob.request({"type": "join", "room": "den"})
    assert again["type"] == "error" and again["code"] == "banned", again


def test_chatkit_admin_registers_an_account_for_the_whole_cluster(cluster, redis_server,
                                                                 opened, chatkit_home):
    import subprocess

    from helpers import chatkit_cmd, cli_env

    a = cluster(tls=False)
    done = subprocess.run(chatkit_cmd("admin", "--cluster", redis_server.url, "register",
                                      "carol"), input="a long pass phrase\n", text=True,
                          capture_output=True, env=cli_env(chatkit_home), timeout=30)
    assert done.returncode == 0, done.stderr
    assert "every node of the cluster applies this at once" in done.stdout

    def refused() -> bool:
        guest = JsonClient(a.port)
        opened.append(guest)
        guest.send({"type": "hello", "version": 1, "nick": "carol", "room": None})
        answer = guest.read_frame()
        if answer and answer["type"] == "welcome":
            guest.send({"type": "quit"})
            guest.expect("bye")
        return bool(answer and answer.get("code") == "nick_registered")

    wait_for(refused, message="the node hears of the new account")
    listed = subprocess.run(chatkit_cmd("admin", "--cluster", redis_server.url, "accounts"),
                            text=True, capture_output=True, env=cli_env(chatkit_home),
                            timeout=30)
    assert listed.stdout.split()[0] == "carol"


def test_an_irc_client_on_one_node_talks_with_people_on_another(cluster, opened):
    from test_irc_door import IrcClient

    a, b = cluster(tls=False), cluster(tls=False, irc_port=0)
    alice = client(opened, a, "alice")
    irc = IrcClient(b.irc_port, "weeuser")
    opened.append(irc)
    irc.join("#lobby")
    alice.expect("join", nick="weeuser")
    alice.request({"type": "msg", "room": "lobby", "text": "hello irc"})
    irc.expect(r":alice!\S* PRIVMSG #lobby :hello irc")
    irc.say("PRIVMSG #lobby :hello json")
    assert alice.expect("message", text="hello json")["nick"] == "weeuser"
    irc.say("NAMES #lobby")
    names = irc.expect(" 353 ")
    assert "alice" in names and "weeuser" in names


def test_nodes_on_one_machine_need_no_database_each(redis_server, tmp_path, opened):
    from helpers import ServeProcess

    home = str(tmp_path / "one-home")  # one user, one config directory, two nodes
    nodes = [ServeProcess.start(["--no-discovery", "--no-tls", "--cluster", redis_server.url],
                                env_home=home) for _ in range(2)]
    try:
        for node in nodes:
            banner = [node.proc.stdout.readline() for _ in range(3)]  # printed at once
            assert any("no archive on this node: --db PATH keeps one" in line
                       for line in banner), banner
        alice = JsonClient(nodes[0].port, "alice")
        bob = JsonClient(nodes[1].port, "bob")
        opened += [alice, bob]
        alice.request({"type": "msg", "room": "lobby", "text": "kept in redis"})
        late = JsonClient(nodes[1].port, "carol")
        opened.append(late)
        assert any(f.get("text") == "kept in redis" and f.get("history") for f in late.frames)
    finally:
        for node in nodes:
            node.stop()


# One id from the cluster's counter and an entry of the log with it, atomically (as a node's
# script does: the log's ids must grow)
_WRITE = """
local id = redis.call('INCR', 'chatkit:seq')
redis.call('XADD', 'chatkit:log', id..'-0', unpack(ARGV))
return id
"""


def test_malformed_entries_in_the_log_are_skipped_and_the_nodes_go_on(cluster, redis_server,
                                                                      opened, caplog):
    """Whoever can write to Redis can write anything into the log: a batch that says it is a
    node's own but whose count is not a number, or is far more than a node ever writes, and
    another node's line whose tag cannot be one. Each is skipped (the valid event in it is
    still shown), no traceback is logged, and the chat goes on."""
    import json

    import redis

    a, b = cluster(tls=False), cluster(tls=False)
    alice, bob = client(opened, a, "alice"), client(opened, b, "bob")
    alice.expect("join", nick="bob")
    node_a = a.info()["node"]
    event = {"type": "message", "room": "lobby", "nick": "mallory", "text": "still shown",
             "action": False, "id": 0, "ts": 1.0}
    item = {"e": event, "t": "rlobby", "k": "message",
            "c": ["some-client", {"not": "a tag"}, ["lobby", "still shown", False]]}
    writer = redis.Redis.from_url(redis_server.url)
    try:
        write = writer.register_script(_WRITE)
        write(args=["o", node_a, "s", "7", "n", "not a number", "b", "[]"])
        write(args=["o", node_a, "s", "99999999", "n", "99999999", "b", "[]"])
        write(args=["o", "mallory-node", "s", "1", "n", "1", "b", json.dumps([item])])
    finally:
        writer.close()
    for person in (alice, bob):
        assert person.expect("message", nick="mallory")["text"] == "still shown"
    echo = bob.request({"type": "msg", "room": "lobby", "text": "and the chat goes on"})
    assert alice.expect("message", text="and the chat goes on")["id"] == echo["id"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
