"""The message log: durability, history on join, replay after an id, `chatkit history`."""

from __future__ import annotations

import json
import signal
import subprocess
import threading

from chatkit.store import read_history

from helpers import JsonClient, ServeProcess, TextClient, chatkit_cmd, cli_env, wait_for


def send_all(client: JsonClient, texts: list[str], room: str = "lobby") -> list[int]:
    """Send each text and wait for its echo; return the accepted ids."""
    return [client.request({"type": "msg", "room": room, "text": t})["id"] for t in texts]


def test_history_on_join_is_marked_and_survives_restart(server_factory, tmp_path):
    db = str(tmp_path / "chat.db")
    server = server_factory(db=db)
    alice = JsonClient(server.port, "alice")
    ids = send_all(alice, [f"hello {i}" for i in range(5)])
    alice.request({"type": "topic", "room": "lobby", "text": "release friday"})
    alice.close()
    server.stop()

    restarted = server_factory(db=db)
    bob = JsonClient(restarted.port, "bob", room=None)
    bob.send({"type": "join", "room": "lobby", "ref": "j"})
    bob.expect("joined")
    end = bob.expect("history_end")
    history = [f for f in bob.frames if f.get("history")]
    assert [f["id"] for f in history if f["type"] == "message"] == ids
    assert history[-1]["type"] == "topic" and history[-1]["text"] == "release friday"
    assert end["count"] == 6 and end["ref"] == "j"
    fresh = bob.request({"type": "msg", "room": "lobby", "text": "new"})
    assert fresh["id"] > history[-1]["id"]  # ids continue after a restart
    bob.close()


def test_topics_survive_a_restart_and_come_back_with_their_room(server_factory, tmp_path):
    # the lobby has its topic at once; another room gets its topic back when it is next
    # created, even after retention deleted the topic change from the log
    db = str(tmp_path / "chat.db")
    server = server_factory(db=db)
    alice = JsonClient(server.port, "alice")
    alice.request({"type": "topic", "room": "lobby", "text": "release friday"})
    alice.request({"type": "join", "room": "dev"})
    alice.request({"type": "topic", "room": "dev", "text": "ship it"})
    alice.close()
    server.stop()

    restarted = server_factory(db=db, max_messages=1, prune_every=0.05)
    bob = JsonClient(restarted.port, "bob", room=None)
    bob.send({"type": "join", "room": "lobby"})
    assert bob.expect("joined")["topic"] == "release friday"
    rooms = bob.request({"type": "rooms"})["rooms"]
    assert [r["name"] for r in rooms] == ["lobby"]  # dev is not there until someone makes it
    send_all(bob, ["a", "b", "c"])
    wait_for(lambda: len(restarted.bus.store.room_history("dev", limit=9)) == 0,
             message="the topic change pruned from the log")
    joined = bob.request({"type": "join", "room": "dev"})
    assert joined["topic"] == "ship it"
    topic = bob.request({"type": "topic", "room": "dev"})
    assert topic["text"] == "ship it"
    bob.close()


def test_a_room_that_empties_keeps_its_topic(server):
    alice = JsonClient(server.port, "alice")
    alice.request({"type": "join", "room": "dev"})
    alice.request({"type": "topic", "room": "dev", "text": "ship it"})
    alice.request({"type": "part", "room": "dev"})
    assert alice.request({"type": "join", "room": "dev"})["topic"] == "ship it"
    alice.request({"type": "topic", "room": "dev", "text": ""})  # cleared: stays cleared
    alice.request({"type": "part", "room": "dev"})
    assert alice.request({"type": "join", "room": "dev"})["topic"] is None
    alice.close()


def test_text_mode_sees_history_with_a_marker(server_factory):
    server = server_factory(history_on_join=3)
    alice = JsonClient(server.port, "alice")
    send_all(alice, ["one", "two", "three", "four"])
    carol = TextClient(server.port)
    carol.expect_prompt()
    carol.say("carol")
    lines = [carol.expect("<alice> two"), carol.expect("<alice> three"),
             carol.expect("<alice> four"), carol.expect("end of history")]
    assert lines[0].startswith("[lobby ") and lines[-1].endswith("(3 messages)")
    carol.say("/history 1")
    assert "<alice> four" in carol.expect("<alice>")
    alice.close()
    carol.close()


def test_reconnect_after_last_seen_id_gets_exactly_the_gap(server):
    alice = JsonClient(server.port, "alice")
    bob = JsonClient(server.port, "bob")
    seen = send_all(alice, ["before 1", "before 2"])[-1]
    bob.expect("message", text="before 2")
    bob.close()
    wait_for(lambda: "bob" not in [s.nick for s in server.door.connections], message="bob gone")
    missed = send_all(alice, [f"missed {i}" for i in range(5)])

    back = JsonClient(server.port, "bob", room=None)
    back.send({"type": "join", "room": "lobby", "after": seen})
    back.expect("history_end")
    replayed = [f["id"] for f in back.frames if f.get("history")]
    assert replayed == missed
    live = send_all(alice, ["after"])
    assert back.expect("message", text="after")["id"] == live[0]
    assert not [f for f in back.frames if f.get("text") == "before 2"]
    alice.close()
    back.close()


def test_joining_during_traffic_has_no_gap_and_no_duplicate(server):
    # The sender keeps going until the joiner's history has arrived, then sends 50 more: the
    # join always falls inside the traffic, however loaded the machine (with a fixed count, a
    # slow join could come after the last message).
    sender = JsonClient(server.port, "sender")
    accepted: list[int] = []
    joined = threading.Event()

    def flood() -> None:
        after_join = 0
        for i in range(20_000):  # bounded; ends 50 messages after the join
            accepted.append(sender.request({"type": "msg", "room": "lobby",
                                            "text": f"m{i}"})["id"])
            after_join += joined.is_set()
            if after_join >= 50:
                return

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        wait_for(lambda: server.bus.published_id > 0 and len(sender.frames) > 50,
                 message="traffic under way")
        joiner = JsonClient(server.port, "joiner", room=None)
        joiner.send({"type": "join", "room": "lobby", "history": 1000})
        joiner.expect("history_end", timeout=30)
        joined.set()
        thread.join(60)
        assert not thread.is_alive()
        last = f"m{len(accepted) - 1}"
        wait_for(lambda: any(f.get("text") == last for f in _drain(joiner)),
                 timeout=10, message="last message at the joiner")
    finally:
        joined.set()
        thread.join(60)
        sender.close()
    joiner.close()
    ids = [f["id"] for f in joiner.frames if f["type"] == "message"]
    assert ids == sorted(set(ids)), "duplicates or disorder"
    assert ids == accepted, "a gap between history and live messages"
    assert any(f.get("history") for f in joiner.frames)
    assert any(f["type"] == "message" and not f.get("history") for f in joiner.frames)


def _drain(client: JsonClient) -> list[dict]:
    try:
        client.read_frame(0.05)
    except AssertionError:
        pass
    return client.frames


def test_private_messages_are_not_stored_unless_asked(server_factory, tmp_path):
    for log_private, expected in ((False, []), (True, ["psst"])):
        db = tmp_path / f"p{log_private}.db"
        server = server_factory(db=str(db), log_private=log_private)
        alice = JsonClient(server.port, "alice")
        bob = JsonClient(server.port, "bob")
        alice.request({"type": "privmsg", "to": "bob", "text": "psst"})
        alice.request({"type": "msg", "room": "lobby", "text": "public"})
        alice.close()
        bob.close()
        server.stop()
        rows = list(read_history(db))
        assert [r.text for r in rows if r.kind == "private"] == expected
        assert [r.text for r in rows if r.kind == "message"] == ["public"]


def test_sigkill_under_load_loses_no_accepted_message(tmp_path):
    home = str(tmp_path / "home")
    db = tmp_path / "crash.db"
    serve = ServeProcess.start(["--no-discovery", "--db", str(db), "--rate-limit", "0"],
                               env_home=home)
    accepted: list[list[int]] = [[] for _ in range(3)]
    stop = threading.Event()

    def sender(index: int) -> None:
        try:
            client = JsonClient(serve.port, f"s{index}")
        except (AssertionError, OSError):
            return  # could not even register (a very loaded machine): the others carry on
        try:
            for n in range(100_000):  # bounded; ends far sooner when the server dies
                if stop.is_set():
                    break
                frame = client.request({"type": "msg", "room": "lobby", "text": f"{index}:{n}"})
                if frame["type"] == "message":
                    accepted[index].append(frame["id"])
        except (AssertionError, OSError, ValueError):
            pass  # the server was killed mid-request
        finally:
            client.close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: sum(map(len, accepted)) >= 600, timeout=30, message="600 accepted")
        serve.stop(signal.SIGKILL)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        serve.stop()
    stored = {row.id for row in read_history(db)}
    all_accepted = {i for ids in accepted for i in ids}
    assert len(all_accepted) >= 600
    missing = all_accepted - stored
    assert not missing, f"{len(missing)} accepted messages lost of {len(all_accepted)}"
    # At most the messages in flight when the kill came were stored without being echoed.
    assert len(stored) - len(all_accepted) <= 3

    again = ServeProcess.start(["--no-discovery", "--db", str(db)], env_home=home)
    try:
        late = JsonClient(again.port, "late", room=None)
        late.send({"type": "join", "room": "lobby", "history": 10})
        late.expect("history_end")
        assert [f["id"] for f in late.frames if f.get("history")] == sorted(stored)[-10:]
        late.close()
    finally:
        assert again.stop() == 0


def test_history_command_filters_and_exports_json(server_factory, tmp_path):
    db = tmp_path / "h.db"
    server = server_factory(db=str(db))
    alice = JsonClient(server.port, "alice")
    alice.request({"type": "join", "room": "dev"})
    send_all(alice, ["deploy done", "lunch?"], room="dev")
    send_all(alice, ["hello lobby"])
    alice.close()
    server.stop()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(chatkit_cmd("history", "--db", str(db), *args), text=True,
                              capture_output=True, timeout=30, env=cli_env(str(tmp_path)))

    everything = run("--json")
    assert everything.returncode == 0, everything.stderr
    rows = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["deploy done", "lunch?", "hello lobby"]
    assert run("--room", "#DEV").stdout.count("[dev]") == 2
    assert "deploy done" in run("--grep", "DEPLOY").stdout
    assert run("--grep", "DEPLOY").stdout.count("\n") == 1
    assert run("--limit", "1").stdout.strip().endswith("<alice> hello lobby")
    assert run("--since", "1h").stdout.count("\n") == 3
    bad = run("--since", "someday")
    assert bad.returncode == 2 and "cannot read 'someday'" in bad.stderr
    missing = subprocess.run(chatkit_cmd("history", "--db", str(tmp_path / "none.db")),
                             text=True, capture_output=True, timeout=30,
                             env=cli_env(str(tmp_path)))
    assert missing.returncode != 0 and "no message database" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_serve_with_corrupt_database_is_a_one_line_error(tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(b"garbage" * 1000)
    result = subprocess.run(
        chatkit_cmd("serve", "--host", "127.0.0.1", "--port", "0", "--no-discovery", "--db",
                    str(db)),
        text=True, capture_output=True, timeout=30, env=cli_env(str(tmp_path)))
    assert result.returncode != 0
    assert "corrupt or not a chatkit database" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_unwritable_database_path_is_a_one_line_error(tmp_path):
    # A parent that is a regular file cannot hold a database, even for root.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = subprocess.run(
        chatkit_cmd("serve", "--host", "127.0.0.1", "--port", "0", "--no-discovery", "--db",
                    str(blocker / "messages.db")),
        text=True, capture_output=True, timeout=30, env=cli_env(str(tmp_path)))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "cannot open message database" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_with_db_in_a_missing_directory_is_refused(tmp_path):
    # a mistyped --db used to create the directories silently
    result = subprocess.run(
        chatkit_cmd("serve", "--host", "127.0.0.1", "--port", "0", "--no-discovery", "--db",
                    str(tmp_path / "nonexistent" / "dir" / "x.db")),
        text=True, capture_output=True, timeout=30, env=cli_env(str(tmp_path / "home")))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert "does not exist" in result.stderr and "--db" in result.stderr
    assert not (tmp_path / "nonexistent").exists()


def test_a_running_server_applies_retention_by_count(server_factory, tmp_path):
    # The publisher's periodic pass (every minute by default; here every 50 ms) deletes the
    # oldest messages beyond --max-messages while the server runs: a joiner then sees only
    # the newest ones.
    server = server_factory(db=str(tmp_path / "chat.db"), max_messages=3, prune_every=0.05)
    alice = JsonClient(server.port, "alice")
    try:
        ids = send_all(alice, [f"m{i}" for i in range(7)])
        wait_for(lambda: len(server.bus.store.room_history("lobby", limit=100)) == 3,
                 message="the oldest messages pruned")
        bob = JsonClient(server.port, "bob")
        try:
            history = [f["id"] for f in bob.frames if f.get("history")]
            assert history == ids[-3:]
        finally:
            bob.close()
    finally:
        alice.close()
