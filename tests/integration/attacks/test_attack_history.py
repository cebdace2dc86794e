"""Issue 13, item 10 (history parts): what was written straight into the message database (an
escape sequence, a bidi override, a time no clock can show) reaches neither `chatkit history`,
nor a chatkit client's history, nor a text-mode `nc`; `chatkit history` streams the log instead
of loading it whole; a hostile `ts` (-1e20) is never an OverflowError. Real server on 127.0.0.1
and real CLI subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chatkit.client.render import View, render_event, timestamp
from chatkit.protocol import check_server_frame, render_text
from chatkit.server.hub.history import history_frame
from chatkit.store import StoredMessage, read_history
from chatkit.store.schema import connect, migrate

from helpers import JsonClient, TextClient, chatkit_cmd, cli_env

RUN_TIMEOUT = 60
HOSTILE = ["\x1b]0;pwned\x07\x1b[2J\x1b[31mred", "\x9b31mc1", "evil\u202eexe.txt", "ok"]
CONTROLS = ("\x1b", "\x9b", "\x07", "\u202e")


def _make_db(path: Path, rows: list[tuple[str, str, float]]) -> None:
    """A chatkit database with `rows` (nick, text, ts) in lobby, inserted directly."""
    conn = connect(str(path))
    try:
        migrate(conn)
        conn.execute("BEGIN")  # one transaction: autocommit would sync every row
        conn.executemany("INSERT INTO messages (room, room_key, kind, nick, target, text, ts) "
                         "VALUES ('lobby', 'lobby', 'message', ?, NULL, ?, ?)", rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _history(home: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(chatkit_cmd("history", *args), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, env=cli_env(home))


def test_cli_history_prints_no_escape_sequence_from_the_database(tmp_path, chatkit_home):
    db = tmp_path / "tampered.db"
    _make_db(db, [("mal\x1b[5mlory", text, 1.7e9) for text in HOSTILE])
    for args in ([], ["--json"], ["--limit", "2"]):
        run = _history(chatkit_home, "--db", str(db), *args)
        assert run.returncode == 0, run.stderr
        assert not any(c in run.stdout for c in CONTROLS), repr(run.stdout)
        assert "exe.txt" in run.stdout and ("red" in run.stdout or args)


def test_cli_history_survives_a_time_no_clock_can_show(tmp_path, chatkit_home):
    db = tmp_path / "times.db"
    _make_db(db, [("alice", "far past", -1e20), ("alice", "far future", 1e300),
                  ("alice", "fine", 1.7e9)])
    run = _history(chatkit_home, "--db", str(db))
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    lines = run.stdout.splitlines()
    assert [line.split("> ")[1] for line in lines] == ["far past", "far future", "fine"]
    assert lines[0].startswith("????-??-??")
    run = _history(chatkit_home, "--db", str(db), "--json")
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["time"] for line in run.stdout.splitlines()][:2] == [None, None]


def test_server_history_frames_are_sanitised_and_bounded(tmp_path, server_factory):
    db = tmp_path / "served.db"
    _make_db(db, [("mallory", text, 1.7e9) for text in HOSTILE] + [("mallory", "bad", -1e20)])
    server = server_factory(db=str(db))
    client = JsonClient(server.port)
    try:
        client.send({"type": "hello", "version": 1, "nick": "bob", "room": "lobby"})
        end = client.expect("history_end")
        replayed = [f for f in client.frames if f.get("history")]
        assert end["count"] == len(replayed) == len(HOSTILE) + 1
        for frame in replayed:
            assert check_server_frame(frame) is frame  # a client takes it: ts in range
            assert not any(c in frame["text"] for c in CONTROLS), frame
    finally:
        client.close()


def test_text_mode_history_replay_sends_no_escape_to_nc(tmp_path, server_factory):
    db = tmp_path / "nc.db"
    _make_db(db, [("mallory", text, 1.7e9) for text in HOSTILE] + [("mallory", "bad", -1e20)])
    server = server_factory(db=str(db))
    person = TextClient(server.port)
    try:
        person.expect_prompt()
        person.say("bob")
        person.expect("end of history")
        seen = "\n".join(person.lines)
    finally:
        person.close()
    assert "red" in seen and "bad" in seen
    assert not any(c in seen for c in CONTROLS), repr(seen)


def test_hostile_ts_renders_without_overflow():
    for ts in (-1e20, 1e300, float("nan"), "soon"):
        assert len(timestamp(ts)) == 5
        frame = {"type": "message", "room": "lobby", "nick": "x", "text": "hi", "id": 1,
                 "ts": ts, "history": True}
        assert render_event(frame, View(me="bob"))  # no OverflowError
        assert render_text(frame)[0].endswith("<x> hi")
        row = StoredMessage(1, "lobby", "message", "x", None, "hi", ts)  # type: ignore[arg-type]
        assert check_server_frame(history_frame(row))["ts"] == 0


def _max_rss_kib(command: list[str], env: dict[str, str]) -> int:
    """Peak RSS of `command` alone: measured by a fresh parent whose only child it is."""
    probe = ("import resource, subprocess, sys; "
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    run = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True,
                         text=True, timeout=RUN_TIMEOUT, env=env, check=True)
    return int(run.stdout)


def test_cli_history_streams_a_large_log(tmp_path, chatkit_home):
    db = tmp_path / "big.db"
    count, text = 40_000, "x" * 1500  # ~60 MB of text
    _make_db(db, [("alice", f"{n:06d} {text}", 1.7e9 + n) for n in range(count)])
    env = cli_env(chatkit_home)
    small = _max_rss_kib(chatkit_cmd("history", "--db", str(db), "--limit", "1"), env)
    whole = _max_rss_kib(chatkit_cmd("history", "--db", str(db)), env)
    assert whole - small < 25_000, (small, whole)  # KiB: loading it all costs > 60 MB
    # still oldest first, with and without --limit
    ids = [row.id for row in read_history(db, limit=3)]
    assert ids == sorted(ids) == [count - 2, count - 1, count]
    first = next(iter(read_history(db)))
    assert first.text is not None and first.text.startswith("000000")
