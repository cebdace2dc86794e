"""Security: TLS with trust on first use, the server password, hostile input, floods and
slow readers. Every protection is checked for its exact outcome, and for the server still
serving everyone else. Real sockets on 127.0.0.1 only (plus 127.0.0.2 as a second source
address, still loopback)."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import struct
import subprocess
import threading
import time
import unicodedata
from pathlib import Path

import pytest

from chatkit import tls
from chatkit.client.connection import Connection
from chatkit.errors import UnreachableError
from chatkit.protocol import MAX_FRAME, MAX_NICK, MAX_ROOM, MAX_TEXT, PROTOCOL_VERSION
from chatkit.tls import KnownServers, TrustError

from helpers import JsonClient, LineClient, ServeProcess, TextClient, chatkit_cmd, cli_env, wait_for

RUN_TIMEOUT = 20
PASSWORD = "correct horse"


# --------------------------------------------------------------------------- helpers


class Opened:
    """Tracks every client and connection a test opens; all are closed at teardown."""

    def __init__(self) -> None:
        self.items: list = []

    def add(self, item):
        self.items.append(item)
        return item

    def json(self, port: int, nick: str | None = None, room="lobby", **kw) -> JsonClient:
        return self.add(JsonClient(port, nick, room, **kw))

    def text(self, port: int, nick: str | None = None) -> TextClient:
        return self.add(TextClient(port, nick))

    def raw(self, port: int, source: str | None = None) -> LineClient:
        if source is None:
            return self.add(LineClient(port))
        client = LineClient.__new__(LineClient)
        client.sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                               source_address=(source, 0))
        client.buffer = b""
        client.lines = []
        return self.add(client)

    def tls(self, port: int, nick: str, known: KnownServers, **kw) -> Connection:
        return self.add(Connection.open("127.0.0.1", port, nick, known_servers=known, **kw))

    def close_all(self) -> None:
        for item in self.items:
            item.close()


@pytest.fixture
def opened():
    tracker = Opened()
    try:
        yield tracker
    finally:
        tracker.close_all()


@pytest.fixture
def known(tmp_path) -> KnownServers:
    return KnownServers(tmp_path / "known_servers.json")


def run(home: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    # stdin is not a terminal: a client must not stop to ask for a password
    return subprocess.run(chatkit_cmd(*args), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=cli_env(home, **env),
                          timeout=RUN_TIMEOUT)


def login(client: JsonClient, nick: str, password: str | None, room="lobby") -> dict:
    """Send a hello with a password; return the first welcome or error."""
    hello = {"type": "hello", "version": PROTOCOL_VERSION, "nick": nick, "room": room}
    if password is not None:
        hello["password"] = password
    client.send(hello)
    while True:
        line = client.read_line()
        assert line is not None, f"closed during the handshake: {client.lines}"
        if not line.startswith("{"):
            continue  # a text-mode greeting sent before the hello arrived
        frame = json.loads(line)
        client.frames.append(frame)
        if frame["type"] in ("welcome", "error"):
            if frame["type"] == "welcome":
                client.welcome = frame
                if room is not None:
                    client.expect("history_end")
            return frame


def read_until_prompt(client: LineClient, prompt: bytes, timeout: float = 5.0) -> bytes:
    """The bytes before `prompt`, consumed."""
    before = client.read_until_prompt(prompt, timeout)
    client.buffer = b""
    return before


def sync(client: JsonClient) -> list[dict]:
    """Ping and return every frame received up to the pong."""
    start = len(client.frames)
    client.request({"type": "ping"})
    return client.frames[start:]


def round_trip(client: JsonClient) -> float:
    started = time.monotonic()
    client.request({"type": "ping"})
    return time.monotonic() - started


def already(client: JsonClient, kind: str, **fields) -> dict | None:
    """A frame of `kind` with `fields` that `client` has received already, if any."""
    for frame in client.frames:
        if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
            return frame
    return None


def rst_close(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_to_eof(client: LineClient, timeout: float = 5.0) -> list[str]:
    """Lines until the server closes (EOF or reset)."""
    return client.read_until_eof(timeout)


# --------------------------------------------------------------------------- TLS


def test_fresh_server_is_encrypted_and_first_connection_pins(server, opened, known):
    assert server.fingerprint and server.fingerprint.startswith("SHA256:")
    conn = opened.tls(server.port, "alice", known)
    assert conn.tls is not None
    assert conn.fingerprint == server.fingerprint
    assert conn.newly_pinned
    address = f"127.0.0.1:{server.port}"
    assert json.loads(known.path.read_text()) == {address: server.fingerprint}
    again = opened.tls(server.port, "alice2", known)
    assert not again.newly_pinned and again.fingerprint == server.fingerprint
    # a plain JSON client and a person with nc share the same port with the TLS clients
    plain = opened.json(server.port, "plainbob")
    person = opened.text(server.port, "carol")
    conn.request({"type": "msg", "room": "lobby", "text": "over tls"})
    assert plain.expect("message", nick="alice")["text"] == "over tls"
    person.expect("[lobby] <alice> over tls")
    plain.request({"type": "msg", "room": "lobby", "text": "in the clear"})
    person.expect("<plainbob> in the clear")
    while True:
        frame = conn.recv(5)
        assert frame is not None
        if frame["type"] == "message" and frame["nick"] == "plainbob":
            assert frame["text"] == "in the clear"
            break


def test_changed_certificate_is_refused_naming_both(server_factory, opened, known, tmp_path):
    first = server_factory()
    port = first.port
    opened.tls(port, "alice", known).close()
    old = first.fingerprint
    first.stop()
    cert, key = tmp_path / "other-cert.pem", tmp_path / "other-key.pem"
    tls.ensure_certificate(cert, key, "impostor", ["127.0.0.1"])
    second = server_factory(port=port, tls_cert=str(cert), tls_key=str(key))
    assert second.fingerprint != old
    with pytest.raises(TrustError) as caught:
        Connection.open("127.0.0.1", port, "alice", known_servers=known)
    message = str(caught.value)
    assert old in message and second.fingerprint in message
    assert f"chatkit trust --forget 127.0.0.1:{port}" in message
    assert "\n" not in message and caught.value.exit_code == 7
    assert known.get(f"127.0.0.1:{port}") == old  # the pin is unchanged
    # the explicit opt-out connects anyway, still encrypted, and pins nothing
    conn = opened.tls(port, "alice", known, insecure=True)
    assert conn.fingerprint == second.fingerprint and not conn.newly_pinned
    assert known.get(f"127.0.0.1:{port}") == old
    # the refused attempt did not disturb the server
    watcher = opened.json(port, "watcher")
    conn.request({"type": "msg", "room": "lobby", "text": "still here"})
    assert watcher.expect("message", nick="alice")["text"] == "still here"


def test_spoofed_discovery_fingerprint_is_refused(server, opened, known):
    spoofed = "SHA256:" + "A" * 43
    with pytest.raises(TrustError) as caught:
        Connection.open("127.0.0.1", server.port, "alice", known_servers=known,
                        expected_fingerprint=spoofed)
    assert spoofed in str(caught.value) and server.fingerprint in str(caught.value)
    assert "discovery" in str(caught.value)
    assert known.all() == {}  # nothing was pinned from a refused connection
    conn = opened.tls(server.port, "alice", known, expected_fingerprint=server.fingerprint)
    assert conn.newly_pinned


def test_require_tls_refuses_plain_with_a_line(server_factory, opened, known):
    server = server_factory(require_tls=True)
    person = opened.raw(server.port)  # says nothing, like nc
    lines = read_to_eof(person)
    assert lines == ["!!! this server accepts TLS connections only: use `chatkit join`"]
    program = opened.raw(server.port)
    program.send_raw(b'{"type":"hello","version":1,"nick":"bob"}\n')
    assert program.read_line() == lines[0]
    conn = opened.tls(server.port, "alice", known)
    assert conn.welcome["nick"] == "alice"
    wait_for(lambda: len(server.door.connections) == 1, message="plain sessions gone")


def test_tls_client_to_plain_server_fails_in_one_line(server_factory, opened, known):
    server = server_factory(tls=False)
    assert server.fingerprint is None
    with pytest.raises(UnreachableError) as caught:
        Connection.open("127.0.0.1", server.port, "alice", known_servers=known, timeout=3)
    message = str(caught.value)
    # the core says what failed; `chatkit join`/`send` add "--no-tls" (test_client_connection)
    assert "\n" not in message and "TLS" in message and "chatkit server with TLS" in message
    conn = opened.tls(server.port, "alice", known, tls=False)
    assert conn.tls is None and conn.welcome["nick"] == "alice"
    assert known.all() == {}


def test_key_is_private_and_reused_on_restart(server_factory, chatkit_home):
    first = server_factory()
    key = Path(chatkit_home) / "config" / "server-key.pem"
    assert key.exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    fingerprint = first.fingerprint
    first.stop()
    second = server_factory()
    assert second.fingerprint == fingerprint
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_tls_slowloris_handshake_is_cut(server_factory, opened):
    server = server_factory(handshake_timeout=0.5)
    started = time.monotonic()
    client = opened.raw(server.port)
    client.send_raw(b"\x16\x03\x01")  # the start of a ClientHello, and then nothing
    assert read_to_eof(client) == []
    assert time.monotonic() - started < 4
    wait_for(lambda: not server.door.connections, message="session removed")


def test_own_certificate_via_cli_send_and_trust(tmp_path):
    cert, key = tmp_path / "my-cert.pem", tmp_path / "my-key.pem"
    tls.ensure_certificate(cert, key, "myhost", ["127.0.0.1"])
    _, fingerprint = tls.server_context(cert, key)
    proc = ServeProcess.start(["--no-discovery", "--tls-cert", str(cert), "--tls-key",
                               str(key)], env_home=str(tmp_path / "serve-home"))
    try:
        assert proc.proc.stdout is not None
        banner = [proc.proc.stdout.readline().strip() for _ in range(3)]  # bounded
        assert f"chatkit: TLS certificate fingerprint {fingerprint}" in banner
        home = str(tmp_path / "client-home")
        address = f"127.0.0.1:{proc.port}"
        sent = run(home, "send", "--host", "127.0.0.1", "--port", str(proc.port), "--nick",
                   "cli", "hello")
        assert sent.returncode == 0, sent.stderr
        assert f"pinned its certificate {fingerprint}" in sent.stderr
        again = run(home, "send", "--host", "127.0.0.1", "--port", str(proc.port), "--nick",
                    "cli", "hello again")
        assert again.returncode == 0 and "pinned" not in again.stderr
        listed = run(home, "trust")
        assert listed.returncode == 0 and listed.stdout.split() == [address, fingerprint]
        forgot = run(home, "trust", "--forget", address)
        assert forgot.returncode == 0 and "forgot" in forgot.stdout
        assert run(home, "trust").stdout == ""
        unknown = run(home, "trust", "--forget", address)
        assert unknown.returncode == 2 and "no certificate pinned" in unknown.stderr
        # a pin for someone else's certificate: `send` refuses with status 7 (identity)
        KnownServers(Path(home) / "config" / "known_servers.json").pin(address, "SHA256:x")
        refused = run(home, "send", "--host", "127.0.0.1", "--port", str(proc.port),
                      "--nick", "cli", "no")
        assert refused.returncode == 7 and "SERVER IDENTITY CHANGED" in refused.stderr
        assert "Traceback" not in refused.stderr
        insecure = run(home, "send", "--insecure", "--host", "127.0.0.1", "--port",
                       str(proc.port), "--nick", "cli", "yes")
        assert insecure.returncode == 0, insecure.stderr
    finally:
        assert proc.stop() == 0


# --------------------------------------------------------------------------- password


def test_wrong_password_is_delayed_for_that_client_only(server_factory, opened):
    server = server_factory(password=PASSWORD)
    alice = opened.json(server.port)
    assert login(alice, "alice", PASSWORD)["type"] == "welcome"
    bob = opened.json(server.port)
    assert login(bob, "bob", PASSWORD)["type"] == "welcome"
    for given in ("wrong", "also wrong"):  # (no password at all is answered at once)
        guesser = opened.json(server.port)
        hello = {"type": "hello", "version": 1, "nick": "mallory"}
        if given is not None:
            hello["password"] = given
        started = time.monotonic()
        guesser.send(hello)
        # meanwhile the others chat without delay
        trips = []
        for i in range(3):
            began = time.monotonic()
            alice.request({"type": "msg", "room": "lobby", "text": f"during {given} {i}"})
            bob.expect("message", text=f"during {given} {i}")
            trips.append(time.monotonic() - began)
        error = guesser.expect("error")
        elapsed = time.monotonic() - started
        assert error["code"] == "bad_password", error
        assert elapsed >= 0.8
        assert max(trips) < 0.5, trips
        assert "mallory" not in server.hub.nicks
    # the right password is welcomed
    late = opened.json(server.port)
    assert login(late, "late", PASSWORD)["nick"] == "late"


def test_text_mode_asks_for_the_password_first(server_factory, opened):
    server = server_factory(password=PASSWORD)
    person = opened.raw(server.port)
    read_until_prompt(person, b"Password: ")
    person.send_raw(b"nope\r\n")
    before = read_until_prompt(person, b"Password: ")
    assert b"!!! wrong password" in before
    person.send_raw(PASSWORD.encode() + b"\r\n")
    read_until_prompt(person, b"Nickname: ")
    person.send_raw(b"tom\r\n")
    person.read_until(lambda line: "you joined lobby" in line)
    program = opened.json(server.port)
    assert login(program, "prog", PASSWORD)["type"] == "welcome"
    program.request({"type": "msg", "room": "lobby", "text": "hi tom"})
    person.read_until(lambda line: line == "[lobby] <prog> hi tom")


def test_repeated_failures_throttle_the_address(server_factory, opened):
    server = server_factory(password=PASSWORD)
    alice = opened.json(server.port)
    assert login(alice, "alice", PASSWORD)["type"] == "welcome"
    spare = opened.json(server.port)  # opened before the failures, registers after them
    spare.send({"type": "ping"})
    assert spare.expect("error")["code"] == "not_registered"
    guessers = [opened.json(server.port) for _ in range(5)]
    for number, guesser in enumerate(guessers):
        guesser.send({"type": "hello", "version": 1, "nick": f"g{number}", "password": "x"})
    for guesser in guessers:
        assert guesser.expect("error")["code"] == "bad_password"
    # a new connection from the same address is refused with a readable line
    late = opened.raw(server.port)
    lines = read_to_eof(late)
    assert len(lines) == 1 and lines[0].startswith("!!! too many wrong passwords"), lines
    # a connection opened earlier cannot keep guessing either, even with the right password
    answer = login(spare, "spare", PASSWORD)
    assert answer["type"] == "error" and answer["code"] == "bad_password", answer
    assert "spare" not in server.hub.nicks
    # another address is served, and so is everyone already in
    other = opened.raw(server.port, source="127.0.0.2")
    other.send_raw(json.dumps({"type": "hello", "version": 1, "nick": "other",
                               "password": PASSWORD}).encode() + b"\n")
    assert json.loads(other.read_line())["type"] == "welcome"
    assert round_trip(alice) < 1


def test_serve_password_from_env_and_file_not_in_argv(tmp_path, monkeypatch):
    secret_file = tmp_path / "password.txt"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("CHATKIT_PASSWORD", "from-the-env")
    with_env = ServeProcess.start(["--no-discovery"], env_home=str(tmp_path / "s1"))
    monkeypatch.delenv("CHATKIT_PASSWORD")
    with_file = ServeProcess.start(["--no-discovery", "--password-file", str(secret_file)],
                                   env_home=str(tmp_path / "s2"))
    home = str(tmp_path / "client")
    try:
        for proc, password in ((with_env, "from-the-env"), (with_file, "from-a-file")):
            argv = Path(f"/proc/{proc.proc.pid}/cmdline").read_bytes()
            assert password.encode() not in argv
            common = ["send", "--host", "127.0.0.1", "--port", str(proc.port), "--nick", "cli"]
            ok = run(home, *common, "--password", password, "hello")
            assert ok.returncode == 0, ok.stderr
            wrong = run(home, *common, "--password", "guess", "hello")
            assert wrong.returncode == 4, wrong.stderr
            assert "wrong password" in wrong.stderr and "Traceback" not in wrong.stderr
            missing = run(home, *common, "hello")
            assert missing.returncode == 4, missing.stderr
            assert "this server needs a password" in missing.stderr
            via_env = run(home, *common, "hello", CHATKIT_PASSWORD=password)
            assert via_env.returncode == 0, via_env.stderr
    finally:
        assert with_env.stop() == 0
        assert with_file.stop() == 0


# --------------------------------------------------------------------------- hostile input

NASTY = [
    "\x1b[31mred\x1b[0m",  # CSI colours
    "\x1b[2J\x1b[Hcleared",  # clear screen
    "\x1b]0;pwned title\x07",  # OSC window title
    "\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "\x9b31mC1 CSI\x9d0;c1 osc\x9c",  # C1 controls
    "bell\x07back\x08\x08del\x7f",
    "vt\x0bff\x0cfs\x1cnel\x85end",
    "report.\u202etxt.exe",  # bidi override
    "\u2066isolate\u2069 \u200fmark\u200e",
    "zero\u200bwidth\u200c\u200d\u2060\ufeffsoft\u00adhyphen",
]
UNICODE_OK = "café ñandú naïve — 日本語 中文 한국어 😀🎉👍🏽 Ελληνικά עברית"
BIDI_AND_INVISIBLE = set("\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad\u061c") | {
    chr(c) for c in range(0x202A, 0x202F)} | {chr(c) for c in range(0x2066, 0x206A)}


def forbidden_in(text: str) -> list[str]:
    return [c for c in text
            if unicodedata.category(c) in ("Cc", "Cs") or c in BIDI_AND_INVISIBLE]


def strings_of(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_of(k) + strings_of(v)]
    if isinstance(value, list):
        return [s for item in value for s in strings_of(item)]
    return []


def assert_clean_json(client: JsonClient) -> None:
    for frame in client.frames:
        for text in strings_of(frame):
            assert not forbidden_in(text), (frame, forbidden_in(text))


def assert_clean_text(client: LineClient) -> None:
    raw = "\n".join(client.lines)
    assert "\x1b" not in raw
    for line in client.lines:
        assert not forbidden_in(line), (line, forbidden_in(line))


def test_escape_sequences_never_reach_anyone(server, opened, caplog):
    caplog.set_level(logging.DEBUG, logger="chatkit")
    victim_text = opened.text(server.port, "tv")
    victim_json = opened.json(server.port, "jv")
    attacker = opened.json(server.port, "mallory")
    typist = opened.text(server.port, "typist")
    for nasty in NASTY:
        attacker.request({"type": "msg", "room": "lobby", "text": f"{nasty} {UNICODE_OK}"})
        attacker.request({"type": "me", "room": "lobby", "text": nasty})
        attacker.request({"type": "privmsg", "to": "jv", "text": nasty})
        attacker.request({"type": "topic", "room": "lobby", "text": nasty})
        # names with controls are refused, and the refusal itself is clean
        assert attacker.request({"type": "nick", "nick": f"b{nasty}"})["type"] == "error"
        answer = attacker.request({"type": "join", "room": f"r{nasty}"})
        assert answer["type"] == "error" and answer["code"] == "bad_room"
        # controls that str.strip() removes must not come back in an error either
        answer = attacker.request({"type": "msg", "room": "\x1c\x0bnowhere\x85", "text": "x"})
        assert answer["type"] == "error"
        # a person typing raw bytes
        typist.send_raw(nasty.replace("\x0b", "").replace("\x0c", "").encode() + b"\r\n")
        typist.send_raw(f"/me {nasty}\r\n".encode())
    hello = {"type": "hello", "version": 1, "nick": "\x1b[31mred", "ref": "n"}
    nick_probe = opened.json(server.port)
    nick_probe.send(hello)
    assert nick_probe.expect("error")["code"] == "bad_nick"
    attacker.request({"type": "join", "room": "side"})
    victim_json.request({"type": "join", "room": "side"})
    attacker.request({"type": "part", "room": "side", "reason": NASTY[2] + NASTY[7]})
    attacker.request({"type": "msg", "room": "lobby", "text": "marker"})
    victim_json.expect("message", text="marker")
    victim_text.expect("<mallory> marker")
    typist.say("typed marker")
    victim_json.expect("message", text="typed marker")
    attacker.send({"type": "quit", "reason": NASTY[0] + NASTY[4] + NASTY[7]})
    already(victim_json, "quit", nick="mallory") or victim_json.expect("quit", nick="mallory")
    victim_text.expect("*** mallory quit")
    assert_clean_json(victim_json)
    assert_clean_json(attacker)
    assert_clean_text(victim_text)
    assert_clean_text(typist)
    messages = [f for f in victim_json.frames if f["type"] == "message"]
    assert any(f["text"].endswith(UNICODE_OK) for f in messages)
    assert any(line.endswith(UNICODE_OK) for line in victim_text.lines)
    # whole escape sequences are gone, the text between them stays
    assert any(f["text"].startswith("red") and "[31m" not in f["text"] for f in messages)
    assert not any("[2J" in f["text"] or "pwned" in f["text"] for f in messages)
    topics = [f for f in victim_json.frames if f["type"] == "topic"]
    assert topics and all(not forbidden_in(f["text"] or "") for f in topics)
    for record in caplog.records:
        assert not forbidden_in(record.getMessage()), record.getMessage()
    # and the server keeps serving
    victim_json.request({"type": "msg", "room": "lobby", "text": "after"})
    victim_text.expect("<jv> after")


def test_ordinary_unicode_passes_intact(server, opened):
    alice = opened.json(server.port, "José")
    text_user = opened.text(server.port, "日本")
    watcher = opened.json(server.port, "watcher")
    alice.request({"type": "msg", "room": "lobby", "text": UNICODE_OK})
    assert watcher.expect("message", nick="José")["text"] == UNICODE_OK
    text_user.expect(f"[lobby] <José> {UNICODE_OK}")
    text_user.say(f"/topic {UNICODE_OK}")
    assert watcher.expect("topic")["text"] == UNICODE_OK


def test_fullwidth_and_case_confusables_are_taken(server, opened):
    opened.json(server.port, "alice")
    for lookalike in ("ａｌｉｃｅ", "ALICE", "Ａｌｉｃｅ", "alice\u200b"):
        probe = opened.json(server.port)
        probe.send({"type": "hello", "version": 1, "nick": lookalike})
        error = probe.expect("error")
        assert error["code"] in ("nick_taken", "bad_nick"), (lookalike, error)
        if lookalike != "alice\u200b":
            assert error["code"] == "nick_taken"
    bob = opened.json(server.port, "ｂｏｂ")  # NFKC: registered under the plain spelling
    assert bob.welcome["nick"] == "bob"
    assert bob.request({"type": "nick", "nick": "Ａlice"})["code"] == "nick_taken"
    person = opened.text(server.port)
    person.expect_prompt()
    person.say("ａｌｉｃｅ")
    person.expect("!!! nickname alice is taken")
    # rooms: the fullwidth spelling is the same room
    joined = bob.request({"type": "join", "room": "ｌｏｂｂｙ"})
    assert joined["type"] == "joined" and joined["room"] == "lobby"


def test_names_mixing_look_alike_alphabets_are_refused(server, opened):
    # Cyrillic а (U+0430) in a Latin name: NFKC keeps it, so it is refused as a mix instead.
    opened.json(server.port, "alice")
    probe = opened.json(server.port)
    probe.send({"type": "hello", "version": 1, "nick": "\u0430lice"})
    error = probe.expect("error")
    assert error["code"] == "bad_nick" and "Cyrillic and Latin" in error["message"]
    person = opened.text(server.port)
    person.expect_prompt()
    person.say("\u0430lice")
    person.expect("look alike")
    bob = opened.json(server.port, "bob")
    assert bob.request({"type": "join", "room": "lobb\u0443"})["code"] == "bad_room"
    assert bob.request({"type": "nick", "nick": "\u0430lice"})["code"] == "bad_nick"
    assert opened.json(server.port, "\u0430\u043b\u0438\u0441\u0430").welcome["nick"] == \
        "\u0430\u043b\u0438\u0441\u0430"  # all Cyrillic: fine


def test_size_limits(server_factory, opened):
    server = server_factory(max_rooms_per_client=3)
    alice = opened.json(server.port, "alice")
    watcher = opened.json(server.port, "watcher")
    alice.send_raw(b'{"type":"msg","room":"lobby","text":"' + b"x" * (MAX_FRAME + 100)
                   + b'"}\n')
    assert alice.expect("error")["code"] == "frame_too_long"
    answer = alice.request({"type": "msg", "room": "lobby", "text": "y" * (MAX_TEXT + 1)})
    assert answer["code"] == "text_too_long"
    at_limit = alice.request({"type": "msg", "room": "lobby", "text": "z" * MAX_TEXT})
    assert at_limit["type"] == "message"
    assert alice.request({"type": "nick", "nick": "n" * (MAX_NICK + 1)})["code"] == "bad_nick"
    assert alice.request({"type": "nick", "nick": "n" * MAX_NICK})["type"] == "nick"
    answer = alice.request({"type": "join", "room": "r" * (MAX_ROOM + 1)})
    assert answer["code"] == "bad_room"
    assert alice.request({"type": "join", "room": "r" * MAX_ROOM})["type"] == "joined"
    assert alice.request({"type": "join", "room": "two"})["type"] == "joined"
    answer = alice.request({"type": "join", "room": "four"})
    assert answer["type"] == "error" and answer["code"] == "too_many_rooms"
    assert alice.request({"type": "join", "room": "two"})["type"] == "joined"  # already in
    assert alice.request({"type": "part", "room": "two"})["type"] == "part"
    assert alice.request({"type": "join", "room": "four"})["type"] == "joined"
    person = opened.text(server.port, "tom")
    person.send_raw(b"w" * (MAX_FRAME * 3) + b"\r\n")
    person.expect("!!! line longer than 8192 bytes")
    person.say("still talking")
    assert watcher.expect("message", nick="tom")["text"] == "still talking"
    texts = [f["text"] for f in watcher.frames if f["type"] == "message"]
    assert texts == ["z" * MAX_TEXT, "still talking"]


def test_connection_limits_refuse_with_a_line(server_factory, opened):
    server = server_factory(max_clients=3)
    first = [opened.json(server.port, f"u{i}") for i in range(3)]
    refused = opened.raw(server.port)
    assert read_to_eof(refused) == ["!!! server full (3 clients)"]
    first[0].send({"type": "quit"})
    first[0].expect("bye")
    wait_for(lambda: len(server.door.connections) == 2, message="a slot freed")
    opened.json(server.port, "u3")
    first[1].request({"type": "msg", "room": "lobby", "text": "served"})
    first[2].expect("message", text="served")

    per = server_factory(max_per_address=2)
    a = opened.json(per.port, "a")
    opened.json(per.port, "b")
    third = opened.raw(per.port)
    assert read_to_eof(third) == ["!!! too many connections from 127.0.0.1"]
    other = opened.raw(per.port, source="127.0.0.2")  # another address is still welcome
    other.send_raw(b'{"type":"hello","version":1,"nick":"c"}\n')
    assert json.loads(other.read_line())["type"] == "welcome"
    a.request({"type": "msg", "room": "lobby", "text": "fine"})
    assert per.door.per_address == {"127.0.0.1": 2, "127.0.0.2": 1}


def test_handshake_timeout_silent_and_dripping(server_factory, opened):
    server = server_factory(handshake_timeout=0.5)
    watcher = opened.json(server.port, "watcher")
    silent = opened.raw(server.port)
    started = time.monotonic()
    lines = read_to_eof(silent)
    assert time.monotonic() - started < 4
    assert lines[-1].endswith("!!! no nickname/hello in time; disconnecting"), lines
    for prefix in (b"dripping-nick", b'{"type":"hello","version":1,"nick":"drip'):
        dripper = opened.raw(server.port)
        started = time.monotonic()
        closed = False
        for byte in (prefix * 20)[:100]:  # one byte per 0.1 s at most: 10 s bound
            try:
                dripper.sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            dripper.sock.settimeout(0.1)
            try:
                data = dripper.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            dripper.buffer += data
        assert closed, "the dripping client was never disconnected"
        assert time.monotonic() - started < 4
        assert b"no nickname/hello in time" in dripper.buffer
    wait_for(lambda: len(server.door.connections) == 1, message="only the watcher left")
    assert round_trip(watcher) < 1


def test_reset_connection_is_cleaned_out(server, opened):
    watcher = opened.json(server.port, "watcher")
    ghost = JsonClient(server.port, "ghost")
    sync(watcher)
    rst_close(ghost.sock)
    quit_frame = already(watcher, "quit", nick="ghost") or watcher.expect("quit", nick="ghost")
    assert quit_frame["reason"]
    wait_for(lambda: "ghost" not in server.hub.nicks and len(server.door.connections) == 1,
             message="ghost cleaned out")
    assert opened.json(server.port, "ghost").welcome["nick"] == "ghost"


# --------------------------------------------------------------------------- flood


def test_a_flooder_is_slowed_then_cut_off_and_nobody_else_waits(server_factory, opened, caplog):
    # Lines over the rate are not dropped: the server reads them later (its reader thread
    # stops reading, so TCP slows the sender). A client that keeps sending faster than its
    # rate for longer than flood_seconds is cut off, with a reason; what it got accepted
    # before is a gapless prefix of what it sent. Others chat as usual meanwhile.
    server = server_factory(rate_limit=50, rate_burst=10, flood_seconds=1.5)
    alice = opened.json(server.port, "alice")
    bob = opened.json(server.port, "bob")
    flooder = opened.json(server.port, "flood")
    blast = b"".join(json.dumps({"type": "msg", "room": "lobby", "text": f"spam {i}"}).encode()
                     + b"\n" for i in range(400))  # 8 s of lines at 50 per second
    try:
        flooder.sock.sendall(blast)
    except OSError:
        pass  # cut off while sending
    for i in range(3):  # alice keeps chatting while the flood is handled
        answer = alice.request({"type": "msg", "room": "lobby", "text": f"normal {i}"})
        assert answer["type"] == "message"
        bob.expect("message", nick="alice", text=f"normal {i}")
    frames = []
    for _ in range(1000):
        line = flooder.read_line()
        if line is None:
            break
        frames.append(json.loads(line))
    codes = [f.get("code") for f in frames if f["type"] == "error"]
    assert codes == ["flooding"], codes  # no "rate_limited": nothing was dropped
    assert "flooding" in [f for f in frames if f["type"] == "error"][0]["message"]
    wait_for(lambda: "flood" not in server.hub.nicks, message="flooder gone")
    quit_frame = already(bob, "quit", nick="flood") or bob.expect("quit", nick="flood")
    assert "flooding" in quit_frame["reason"]
    received = [f["text"] for f in bob.frames if f["type"] == "message" and f["nick"] == "flood"]
    assert received == [f"spam {i}" for i in range(len(received))]  # in order, no gap
    assert 10 < len(received) < 400  # more than the burst went through, slowly; not all
    assert len([r for r in caplog.records if "flooding" in r.getMessage()]) == 1
    alice.request({"type": "msg", "room": "lobby", "text": "after the flood"})
    bob.expect("message", nick="alice", text="after the flood")


def test_lines_over_the_rate_are_slowed_not_dropped(server_factory, opened):
    # A paste or a pipe faster than the rate: every line arrives, in order, with no error,
    # from a JSON client and from an nc user alike.
    server = server_factory(rate_limit=40, rate_burst=5)
    bob = opened.json(server.port, "bob")
    fast = opened.json(server.port, "fast")
    fast.sock.sendall(b"".join(
        json.dumps({"type": "msg", "room": "lobby", "text": f"j{i}", "ref": i}).encode()
        + b"\n" for i in range(40)))
    echoes = [fast.expect("message", text=f"j{i}") for i in range(40)]
    assert [e["ref"] for e in echoes] == list(range(40))
    assert not [f for f in fast.frames if f["type"] == "error"]
    typist = opened.text(server.port, "typist")
    typist.send_raw(b"".join(f"t{i}\r\n".encode() for i in range(30)))
    for i in range(40):
        bob.expect("message", nick="fast", text=f"j{i}")
    for i in range(30):
        bob.expect("message", nick="typist", text=f"t{i}")
    typist.say("/rooms")
    typist.expect("1 room")
    assert not [line for line in typist.lines if line.startswith("!!!")]


# --------------------------------------------------------------------------- slow reader


def tls_non_reader(port: int, nick: str, known: KnownServers) -> Connection:
    """A TLS client with a tiny receive buffer that will never read after its handshake."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    conn = Connection(sock, "127.0.0.1", port)
    try:
        conn.start_tls(5, known=known)
        conn.handshake(nick, "lobby", 5)
    except BaseException:
        conn.close()
        raise
    return conn


def test_stopped_tls_reader_is_dropped_others_get_everything(server_factory, opened, known):
    limit = 64 * 1024
    server = server_factory(max_backlog=limit, history_on_join=0)
    opened.add(tls_non_reader(server.port, "stalled", known))
    sender = opened.json(server.port, "sender")
    reader = opened.json(server.port, "reader")
    tls_reader = opened.tls(server.port, "tlsreader", known)
    sync(sender)
    sync(reader)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with server.hub.lock:
                sessions = list(server.door.connections)
            peak[0] = max([peak[0], *(len(s.output.backlog) for s in sessions)])
            stop.wait(0.001)

    sampler = threading.Thread(target=sample, name="test-sampler", daemon=True)
    sampler.start()
    tls_seen: list[int] = []

    def drain_tls(until: int) -> None:
        while not tls_seen or tls_seen[-1] < until:
            frame = tls_reader.recv(10)
            assert frame is not None
            if frame["type"] == "message":
                tls_seen.append(int(frame["text"][1:7]))

    padding = "p" * 200
    sent = 0
    try:
        for _ in range(50):  # at most 50 x 400 messages
            batch = b"".join(json.dumps({"type": "msg", "room": "lobby",
                                         "text": f"m{i:06d} {padding}"}).encode() + b"\n"
                             for i in range(sent, sent + 400))
            sender.sock.sendall(batch)
            sent += 400
            last = f"m{sent - 1:06d} {padding}"
            for client in (sender, reader):
                client.expect("message", timeout=10, text=last)
            drain_tls(sent - 1)
            if "stalled" not in server.hub.nicks:
                break
        wait_for(lambda: "stalled" not in server.hub.nicks, message="the stopped reader dropped")
    finally:
        stop.set()
        sampler.join(5)
    assert sent >= 1000  # it took thousands of messages to fill its buffers
    assert peak[0] <= limit, peak
    quit_frame = already(reader, "quit", nick="stalled") or reader.expect("quit", nick="stalled")
    assert "reading" in quit_frame["reason"]
    for client in (sender, reader):
        got = [int(f["text"][1:7]) for f in client.frames if f["type"] == "message"]
        assert got == list(range(sent))
    assert tls_seen == list(range(sent))
    # still fast for everyone afterwards
    assert round_trip(reader) < 1
    wait_for(lambda: len(server.door.connections) == 3, message="session removed")
    assert os.environ.get("CHATKIT_HOME")  # per-test home in use (sanity)


def test_private_message_target_is_normalised_like_nicknames(server):
    alice = JsonClient(server.port, "alice")
    bob = JsonClient(server.port, "bob")
    try:
        echo = bob.request({"type": "privmsg", "to": "ＡＬＩＣＥ", "text": "found you"})
        assert echo["type"] == "private" and echo["to"] == "alice"
        assert alice.expect("private")["text"] == "found you"
    finally:
        alice.close()
        bob.close()


def test_frames_from_a_hostile_server_are_sanitised_on_arrival():
    """The client side trusts no server either: control characters in any string of any frame
    (here the command help a client prints for /help) never get past Connection.recv."""
    import threading

    evil = "\x1b]0;pwned\x07\x9b31m\u202eusage"
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def fake_server() -> None:
        peer, _ = listener.accept()
        with peer:
            peer.recv(4096)  # the hello
            welcome = {"type": "welcome", "version": 1, "server": "evil\x1b[2J", "nick": "me",
                       "commands": [{"name": "x", "usage": evil, "help": evil}], "id": 1,
                       "ts": 1.0}
            peer.sendall(json.dumps(welcome).encode() + b"\n")
            peer.recv(4096)  # until the client closes

    thread = threading.Thread(target=fake_server)
    thread.start()
    try:
        conn = Connection.open("127.0.0.1", port, "me", room=None, tls=False)
        text = json.dumps(conn.welcome, ensure_ascii=False)
        conn.close()
    finally:
        thread.join(10)
        listener.close()
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in text
    assert "usage" in text and "evil" in text


def test_out_of_range_numbers_are_frame_errors(server, opened):
    # Each of these used to end the connection with an internal error (SQLite cannot hold
    # the integer; int() refuses '²' and numbers of over 4300 digits).
    alice = opened.json(server.port, "alice")
    for frame in ({"type": "history", "room": "lobby", "after": 10**20},
                  {"type": "join", "room": "den", "after": -(10**20)},
                  {"type": "history", "room": "lobby", "limit": 10**30},
                  {"type": "command", "line": "/history ²"},
                  {"type": "command", "line": "/history " + "9" * 4400}):
        answer = alice.request(frame)
        assert answer["type"] == "error", (frame, answer)
    assert alice.request({"type": "ping"})["type"] == "pong"  # still connected
    person = opened.text(server.port, "tina")
    person.say("/history ²")
    person.expect("!!!")
    person.say("/who")
    person.expect("tina")
