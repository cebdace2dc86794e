"""A cluster losing a node: real `chatkit serve --cluster` subprocesses on the test's own Redis,
one killed by its PID (SIGKILL) under load, or stopped (SIGTERM) and started again.

What a chatkit client does after losing its node is done here by hand, frame by frame: it
connects to another node with the same `client_id` (docs/protocol.md, "Re-sent lines"), takes
its nickname back, joins with `after` its last id, and sends again the lines whose echo it
never got, under the same tags. Bounds measured here are printed (`pytest -s`) for the docs.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import JsonClient, RedisServer, ServeProcess, wait_for

pytestmark = pytest.mark.timeout(90)

#: a node's heartbeat expires after 5 s and the live nodes look every second (cluster_redis.py):
#: a killed node's people are seen to quit within about 5-7 s; this is the bound asserted
QUIT_BOUND = 10.0
WINDOW = 16  # lines a sender has on their way at once
STEADY = 7.0  # seconds after which a node reaps the dead (ALIVE_MS + 1 s, then a beat)
AGAIN = "again-"  # the refs of lines sent again after moving to another node


class Talker:
    """A JSON-mode client whose frames a reader thread collects (so a sender can pipeline)."""

    def __init__(self, port: int, nick: str, *, client_id: str | None = None,
                 room: str | None = "lobby") -> None:
        self.nick = nick
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.frames: list[dict[str, Any]] = []
        self.closed_at: float | None = None
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, name=f"talker-{nick}", daemon=True)
        self.reader.start()
        hello: dict[str, Any] = {"type": "hello", "version": 1, "nick": nick, "room": room}
        if client_id is not None:
            hello["client_id"] = client_id
        self.send(hello)
        self.welcome = self.wait_frame(lambda f: f["type"] in ("welcome", "error"))
        if room is not None and self.welcome["type"] == "welcome":
            self.wait_frame(lambda f: f["type"] == "history_end")

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    self.closed_at = time.monotonic()
                    self.cond.notify_all()
                return
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            frames = [json.loads(line) for line in lines if line.strip()]
            with self.cond:
                self.frames.extend(frames)
                self.cond.notify_all()

    def send(self, frame: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(frame).encode() + b"\n")

    def wait(self, predicate: Callable[[list[dict[str, Any]]], Any],
             timeout: float = 10.0) -> Any:
        """Wait until `predicate(frames so far)` is truthy (or the connection closed)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate(self.frames)
                if value or self.closed_at is not None:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.nick}: timed out; last frames "
                                         f"{self.frames[-5:]}")
                self.cond.wait(remaining)

    def wait_frame(self, match: Callable[[dict[str, Any]], bool],
                   timeout: float = 10.0) -> dict[str, Any]:
        found = self.wait(lambda frames: next((f for f in frames if match(f)), None), timeout)
        assert found is not None, f"{self.nick}: closed; frames {self.frames[-5:]}"
        return found

    def snapshot(self) -> list[dict[str, Any]]:
        with self.cond:
            return list(self.frames)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(5)


def lobby_lines(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "message" and f.get("room") == "lobby"]


class Sender:
    """Sends numbered, tagged lines through a Talker, at most WINDOW without their echo."""

    def __init__(self, talker: Talker) -> None:
        self.talker = talker
        self.sent: dict[str, str] = {}  # ref -> text, in the order sent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"sender-{talker.nick}",
                                       daemon=True)

    def echoes(self, frames: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
        """ref -> the echo (the sender's own copy, carrying its ref) of every accepted line."""
        frames = self.talker.snapshot() if frames is None else frames
        return {f["ref"]: f for f in frames if f["type"] == "message" and
                isinstance(f.get("ref"), str) and f["ref"] in self.sent}

    def _run(self) -> None:
        nick = self.talker.nick
        for k in range(100_000):  # bounded; stopped long before
            if self.stop.is_set() or self.talker.closed_at is not None:
                return
            try:
                self.talker.wait(lambda frames: len(self.sent) - len(self.echoes(frames))
                                 < WINDOW, timeout=10)
            except AssertionError:
                return
            ref, text = f"{nick}-{k}", f"{nick} line {k}"
            self.sent[ref] = text
            try:
                self.talker.send({"type": "msg", "room": "lobby", "text": text, "tag": ref,
                                  "ref": ref})
            except OSError:
                return


@pytest.fixture
def nodes(redis_server: RedisServer, tmp_path) -> Iterator[Callable[..., ServeProcess]]:
    """Start `chatkit serve --cluster` subprocesses on the test's Redis; stopped at teardown."""
    started: list[ServeProcess] = []

    def start(name: str, port: int = 0) -> ServeProcess:
        node = ServeProcess.start(
            ["--no-discovery", "--no-tls", "--rate-limit", "0", "--max-per-address", "0",
             "--log-level", "warning", "--cluster", redis_server.url,
             "--cluster-name", "failing"],
            env_home=str(tmp_path / f"home-{name}"), port=port)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def talkers() -> Iterator[list[Talker]]:
    opened: list[Talker] = []
    yield opened
    for talker in opened:
        talker.close()


def test_a_node_killed_under_load_loses_no_accepted_line_and_its_people_move(nodes, talkers):
    one, two, three = nodes("one"), nodes("two"), nodes("three")
    up = time.monotonic()

    def talker(node: ServeProcess, nick: str, **kwargs: Any) -> Talker:
        opened = Talker(node.port, nick, **kwargs)
        talkers.append(opened)
        return opened

    ear = talker(two, "ear")
    far = talker(three, "far")  # a third node, which neither the dead node nor the mover use
    talker(one, "idle")
    cid = secrets.token_hex(12)
    s1 = talker(one, "s1", client_id=cid)
    s2 = talker(two, "s2", client_id=secrets.token_hex(12))
    for nick in ("idle", "s1", "s2"):
        for listener in (ear, far):
            listener.wait_frame(lambda f, nick=nick: f["type"] == "join" and f["nick"] == nick)
    senders = [Sender(s1), Sender(s2)]
    for sender in senders:
        sender.thread.start()
    # Load for a while: a node reaps others only once up for longer than a heartbeat's
    # expiry (cluster.py: after an outage the first node back must not reap the rest), so the
    # bound measured here is the steady state's. Killed with lines on their way (at least 8
    # when that happens within a few seconds).
    def ready(frames: list[dict[str, Any]]) -> bool:
        echoed, waited = len(senders[0].echoes(frames)), time.monotonic() - up
        on_their_way = len(senders[0].sent) - echoed
        return echoed >= 150 and waited > STEADY and (on_their_way >= 8 or waited > STEADY + 5)

    s1.wait(ready, timeout=30)

    one.proc.send_signal(signal.SIGKILL)  # by its PID, in the middle of the load
    killed = time.monotonic()
    s1.wait(lambda frames: False, timeout=5)  # its socket ends (the kernel closes it)
    assert s1.closed_at is not None
    before = s1.snapshot()
    echoed_before = senders[0].echoes(before)
    last_id = max(f["id"] for f in lobby_lines(before))

    # Someone else cannot take a nick of the dead node before it is reaped...
    stranger = JsonClient(two.port)
    try:
        stranger.send({"type": "hello", "version": 1, "nick": "idle", "room": None})
        assert stranger.expect("error")["code"] == "nick_taken"
    finally:
        stranger.close()
    # ...but its own client, with its client_id, takes its nick back at once
    back = talker(two, "s1", client_id=cid, room=None)
    moved = time.monotonic() - killed
    assert back.welcome["type"] == "welcome" and back.welcome["nick"] == "s1", back.welcome
    assert moved < 3.0, f"the nick came back only after {moved:.1f} s"
    back.send({"type": "join", "room": "lobby", "after": last_id, "ref": "rejoin"})
    back.wait_frame(lambda f: f["type"] == "history_end")
    # and sends again what it never saw accepted, under the same tags (a chatkit client's
    # outbox), and, as if their echoes had been lost too, its last five accepted lines
    unechoed = [(ref, text) for ref, text in senders[0].sent.items() if ref not in echoed_before]
    lost_echoes = [(ref, echoed_before[ref]["text"]) for ref in list(echoed_before)[-5:]]
    for ref, text in lost_echoes + unechoed:
        back.send({"type": "msg", "room": "lobby", "text": text, "tag": ref, "ref": AGAIN + ref})
    answers = back.wait(lambda frames: (lambda got: got if len(got) == len(unechoed) + 5
                                        else None)(
        {f["ref"][len(AGAIN):]: f for f in frames if str(f.get("ref", "")).startswith(AGAIN)}))
    assert all(a["type"] == "message" for a in answers.values()), answers
    for ref, _ in lost_echoes:  # answered with the original event: stored once
        assert answers[ref]["id"] == echoed_before[ref]["id"]

    # The dead node's people quit, seen on node two within the bound; their nicks are free
    ear.wait_frame(lambda f: f["type"] == "quit" and f["nick"] == "idle", timeout=QUIT_BOUND + 2)
    gone = time.monotonic() - killed
    known = {f["id"] for f in lobby_lines(back.snapshot()) if f.get("history")}
    repeated = sum(1 for a in answers.values() if a["id"] in known)
    print(f"\nkilled node: nick moved in {moved:.2f} s, its people quit after {gone:.2f} s; "
          f"{len(unechoed)} lines sent again, {repeated} of them already in the log")
    assert gone <= QUIT_BOUND, f"the killed node's people quit only after {gone:.1f} s"
    far.wait_frame(lambda f: f["type"] == "quit" and f["nick"] == "idle", timeout=5)
    for listener in (ear, far):  # s1 moved: it never quit
        assert not [f for f in listener.snapshot() if f["type"] == "quit" and f["nick"] == "s1"]
    newcomer = talker(two, "idle", room=None)
    assert newcomer.welcome["type"] == "welcome" and newcomer.welcome["nick"] == "idle"

    # node two's sender kept going all along; stop it and let every echo arrive
    s2.wait(lambda frames: len(senders[1].echoes(frames)) >= len(echoed_before) + 100,
            timeout=30)
    senders[1].stop.set()
    senders[1].thread.join(15)
    senders[0].thread.join(15)
    s2.wait(lambda frames: len(senders[1].echoes(frames)) == len(senders[1].sent), timeout=15)
    final = s2.snapshot()
    last = max(f["id"] for f in lobby_lines(final))
    heard = ear.wait(lambda frames: (lambda lines: lines if lines and lines[-1]["id"] >= last
                                     else None)(lobby_lines(frames)), timeout=15)
    far_heard = far.wait(lambda frames: (lambda lines: lines if lines and lines[-1]["id"] >= last
                                         else None)(lobby_lines(frames)), timeout=15)
    back_heard = back.wait(lambda frames: (lambda lines: lines if lines and lines[-1]["id"] >=
                                           last else None)(lobby_lines(frames)), timeout=15)

    # One order, each line once, on node two and on node three alike
    assert [(f["id"], f["text"]) for f in heard] == [(f["id"], f["text"]) for f in far_heard]
    ids = [f["id"] for f in heard]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    texts = [f["text"] for f in heard]
    assert len(set(texts)) == len(texts), "a line was seen twice"
    by_text = {f["text"]: f["id"] for f in heard}
    # Every line a sender saw accepted (its echo, or the answer to sending it again) is there,
    # with the id its sender was given
    accepted = [*echoed_before.values(), *answers.values(),
                *senders[1].echoes(final).values()]
    for echo in accepted:
        assert by_text.get(echo["text"]) == echo["id"], echo
    # and every line s1 ever sent is there exactly once (sent again or not)
    assert set(senders[0].sent.values()) <= set(texts)
    # The moved client's view: what node one delivered, then the gap filled from the cluster,
    # then live: the same lines as the listener's, nothing twice, nothing missing
    again = {a["id"] for a in answers.values() if a["id"] <= last_id or
             any(h["id"] == a["id"] and h.get("history") for h in back_heard)}
    view = lobby_lines(before) + [f for f in back_heard if not (
        str(f.get("ref", "")).startswith(AGAIN) and f["id"] in again)]
    assert [f["id"] for f in view] == [f["id"] for f in heard if f["id"] >= view[0]["id"]]


def test_a_node_stopped_and_started_again_has_the_rooms_topics_and_history(nodes, talkers):
    one, two = nodes("one"), nodes("two")
    alice = Talker(one.port, "alice", room="porch")
    talkers.append(alice)
    alice.send({"type": "join", "room": "attic"})
    alice.wait_frame(lambda f: f["type"] == "history_end" and f["room"] == "attic")
    for room, topic in (("porch", "sunsets"), ("attic", "dust")):
        alice.send({"type": "topic", "room": room, "text": topic, "ref": f"t-{room}"})
        alice.wait_frame(lambda f, room=room: f.get("ref") == f"t-{room}")
        alice.send({"type": "msg", "room": room, "text": f"kept in {room}", "ref": f"m-{room}"})
        alice.wait_frame(lambda f, room=room: f.get("ref") == f"m-{room}")
    bob = Talker(two.port, "bob", room="porch")
    talkers.append(bob)

    port = one.port
    stopping = time.monotonic()
    assert one.stop(signal.SIGTERM) == 0
    # a node stopped gracefully leaves at once: its people quit without waiting for expiry
    bob.wait_frame(lambda f: f["type"] == "quit" and f["nick"] == "alice", timeout=5)
    print(f"\nstopped node: its people quit after {time.monotonic() - stopping:.2f} s")

    again = nodes("one", port=port)  # the same address, the same home: a restart
    carol = JsonClient(again.port, "carol", room=None)
    try:
        rooms = {r["name"]: r for r in carol.request({"type": "rooms"})["rooms"]}
        assert rooms["porch"]["topic"] == "sunsets" and rooms["porch"]["members"] == 1
        assert "attic" not in rooms  # nobody is in it now
        for room, topic, members in (("porch", "sunsets", {"bob", "carol"}),
                                     ("attic", "dust", {"carol"})):
            carol.send({"type": "join", "room": room, "history": 10, "ref": room})
            joined = carol.expect("joined", room=room)
            assert joined["topic"] == topic and set(joined["members"]) == members
            kept = carol.expect("message", room=room)
            assert kept["text"] == f"kept in {room}" and kept["history"]
            carol.expect("history_end", room=room)
        # and it is a node of the cluster again: the others hear it, it hears them
        bob.wait_frame(lambda f: f["type"] == "join" and f["nick"] == "carol")
        bob.send({"type": "msg", "room": "porch", "text": "welcome back", "ref": "wb"})
        assert carol.expect("message", text="welcome back")["nick"] == "bob"
        nodes_seen = {n["id"] for n in carol.welcome["cluster"]["nodes"]}
        assert len(nodes_seen) == 2, carol.welcome["cluster"]
    finally:
        carol.close()


def test_a_node_stalled_past_its_heartbeat_brings_its_people_back(nodes, talkers):
    """A node frozen (SIGSTOP: a paused VM, a swap storm) longer than its heartbeat is reaped
    like a dead one; thawed, it tells the cluster again who is connected to it: the others
    see its people join again, except one whose nickname someone took meanwhile, who is
    disconnected, and whose quit nobody else hears (the nick is someone else's now)."""
    one, two = nodes("one"), nodes("two")
    up = time.monotonic()
    ear = Talker(two.port, "ear")
    talkers.append(ear)
    sleepy, loser = Talker(one.port, "sleepy"), Talker(one.port, "loser")
    talkers.extend([sleepy, loser])
    for nick in ("sleepy", "loser"):
        ear.wait_frame(lambda f, nick=nick: f["type"] == "join" and f["nick"] == nick)
    wait_for(lambda: time.monotonic() - up > STEADY, timeout=STEADY + 1, message="steady")

    one.proc.send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        for nick in ("sleepy", "loser"):
            ear.wait_frame(lambda f, nick=nick: f["type"] == "quit" and f["nick"] == nick,
                           timeout=QUIT_BOUND)
        reaped = time.monotonic() - frozen
        taker = Talker(two.port, "loser")  # the nick is free: someone else takes it
        talkers.append(taker)
        assert taker.welcome["type"] == "welcome", taker.welcome
        ear.wait_frame(lambda f: f["type"] == "join" and f["nick"] == "loser" and
                       f["id"] > min(q["id"] for q in ear.snapshot() if q["type"] == "quit"))
    finally:
        one.proc.send_signal(signal.SIGCONT)
    thawed = time.monotonic()

    # sleepy is back: the others are told, and hear it
    back = ear.wait_frame(lambda f: f["type"] == "join" and f["nick"] == "sleepy" and
                          f["id"] > quit_id(ear, "sleepy"), timeout=10)
    assert back["room"] == "lobby"
    print(f"\nstalled node: its people quit after {reaped:.2f} s, joined again "
          f"{time.monotonic() - thawed:.2f} s after it woke")
    loser.wait(lambda frames: False, timeout=10)  # its nick is someone else's: disconnected
    assert loser.closed_at is not None
    sleepy.send({"type": "msg", "room": "lobby", "text": "was I away?", "ref": "away"})
    sleepy.wait_frame(lambda f: f.get("ref") == "away")
    ear.wait_frame(lambda f: f.get("text") == "was I away?")
    ear.send({"type": "msg", "room": "lobby", "text": "a little", "ref": "little"})
    sleepy.wait_frame(lambda f: f.get("text") == "a little")
    # nobody on node two heard "loser" quit again: the loser there is the one who took it
    assert [f["nick"] for f in ear.snapshot() if f["type"] == "quit"].count("loser") == 1
    # and both nodes show the same people in the same rooms
    def who(node: ServeProcess) -> dict[str, list[str]]:
        # a nick per node: one released on a node is free on the others only once that
        # node has appended its release (a few ms later)
        nick = f"count{node.port}"
        with_who = JsonClient(node.port, nick, room=None)
        try:
            return {u["nick"]: u["rooms"] for u in with_who.request({"type": "who"})["users"]
                    if not u["nick"].startswith("count")}
        finally:
            with_who.close()

    expected = {"ear": ["lobby"], "sleepy": ["lobby"], "loser": ["lobby"]}
    wait_for(lambda: who(one) == expected, timeout=5, message="node one's view")
    assert who(two) == expected


def quit_id(listener: Talker, nick: str) -> int:
    return max(f["id"] for f in listener.snapshot() if f["type"] == "quit" and f["nick"] == nick)
