"""Joining without noise: quiet script senders, how much history a join asks for, and a
re-join that replays nothing (issue 12, sections 4 and 5)."""

from __future__ import annotations

import subprocess

from helpers import JsonClient, TextClient, chatkit_cmd, cli_env

RUN_TIMEOUT = 20


def send_all(client: JsonClient, texts: list[str], room: str = "lobby") -> list[int]:
    return [client.request({"type": "msg", "room": room, "text": t})["id"] for t in texts]


def test_a_quiet_client_joins_posts_and_leaves_without_noise(server):
    alice = JsonClient(server.port, "alice")
    ci = JsonClient(server.port)
    ci.send({"type": "hello", "version": 1, "nick": "ci", "room": None, "quiet": True})
    ci.expect("welcome")
    joined = ci.request({"type": "join", "room": "lobby", "history": 0})
    assert joined["type"] == "joined" and "ci" in joined["members"]  # it sees itself
    ci.request({"type": "msg", "room": "lobby", "text": "deployed"})
    assert ci.request({"type": "who", "room": "lobby"})["users"][-1]["nick"] == "ci"
    bob = JsonClient(server.port, "bob")
    assert "ci" not in bob.frames[1]["members"]  # the `joined` a newcomer gets
    assert "ci" not in [u["nick"] for u in bob.request({"type": "who"})["users"]]
    ci.request({"type": "part", "room": "lobby"})
    ci.request({"type": "quit"})
    ci.close()
    # what alice saw: the message, bob joining; no join, part or quit of ci
    marker = alice.request({"type": "msg", "room": "lobby", "text": "marker"})
    seen = [(f["type"], f.get("nick")) for f in alice.frames if f.get("id", 0) < marker["id"]]
    assert ("message", "ci") in seen and ("join", "bob") in seen
    assert not [kind for kind, nick in seen if nick == "ci" and kind != "message"], seen
    alice.close()
    bob.close()


def test_chatkit_send_makes_no_join_or_quit_noise(serve_process, chatkit_home):
    listener = JsonClient(serve_process.port, "listener")
    try:
        result = subprocess.run(
            chatkit_cmd("send", "--host", "127.0.0.1", "--port", str(serve_process.port),
                        "--nick", "ci", "build green"),
            capture_output=True, text=True, env=cli_env(chatkit_home), timeout=RUN_TIMEOUT)
        assert result.returncode == 0, result.stderr
        listener.expect("message", nick="ci")
        marker = listener.request({"type": "msg", "room": "lobby", "text": "marker"})
        noise = [f for f in listener.frames if f.get("nick") == "ci"
                 and f["type"] != "message" and f.get("id", 0) < marker["id"]]
        assert noise == []
        assert "ci" not in [u["nick"] for u in listener.request({"type": "who"})["users"]]
    finally:
        listener.close()


def test_hello_asks_for_its_rooms_history(server):
    alice = JsonClient(server.port, "alice")
    send_all(alice, [f"m{i}" for i in range(12)])
    bob = JsonClient(server.port)
    bob.send({"type": "hello", "version": 1, "nick": "bob", "room": "lobby", "history": 3})
    bob.expect("welcome")
    assert bob.expect("history_end")["count"] == 3
    assert [f["text"] for f in bob.frames if f.get("history")] == ["m9", "m10", "m11"]
    carol = JsonClient(server.port)
    carol.send({"type": "hello", "version": 1, "nick": "carol", "room": "lobby",
                "history": 0})
    assert carol.expect("history_end")["count"] == 0
    alice.close()
    bob.close()
    carol.close()


def test_rejoining_the_room_you_are_in_replays_nothing(server):
    alice = JsonClient(server.port, "alice")
    send_all(alice, ["one", "two", "three"])
    assert alice.request({"type": "join", "room": "lobby"})["type"] == "joined"
    assert alice.expect("history_end")["count"] == 0
    # with `after`, a gap is asked for explicitly: still answered
    alice.request({"type": "join", "room": "lobby", "after": 0})
    assert alice.expect("history_end")["count"] == 3
    tom = TextClient(server.port, "tom")
    tom.expect("end of history")
    before = len(tom.lines)
    tom.say("/join lobby")
    tom.say("/who lobby")
    tom.expect("in lobby")
    assert not [line for line in tom.lines[before:] if "<alice>" in line], tom.lines[before:]
    alice.close()
    tom.close()


def test_piped_join_with_no_history_shows_none(server, chatkit_home):
    alice = JsonClient(server.port, "alice")
    send_all(alice, ["old one", "old two"])
    for flags, expected in ((["--no-history"], 0), (["--history", "1"], 1), ([], 2)):
        result = subprocess.run(
            chatkit_cmd("join", f"127.0.0.1:{server.port}", "--nick", "pipe", "--no-tls",
                        "--json", *flags),
            input="", capture_output=True, text=True, env=cli_env(chatkit_home),
            timeout=RUN_TIMEOUT)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count('"history": true') == expected, (flags, result.stdout)
    alice.close()
