"""Passwords and trust a person can use (issue 12, section 3), over real sockets on 127.0.0.1:
"this server needs a password" and a hidden prompt in a terminal, --password-file on the
clients, telnet echo off for the password, the pin notice never missed, /reconnect after fixing
trust."""

from __future__ import annotations

import subprocess
import time

import pexpect
from test_client_app import ENTER, AppRunner
from test_client_e2e import Terminal

from chatkit.paths import known_servers_file
from chatkit.tls import KnownServers, ensure_certificate

from helpers import JsonClient, LineClient, chatkit_cmd, cli_env, wait_for

PASSWORD = "correct horse"
IAC_WILL_ECHO = b"\xff\xfb\x01"
IAC_WONT_ECHO = b"\xff\xfc\x01"


def run(home: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(chatkit_cmd(*args), capture_output=True, text=True, input=stdin,
                          env=cli_env(home), timeout=20)


def spawn(home: str, *args: str) -> Terminal:
    argv = chatkit_cmd(*args)
    terminal = Terminal.__new__(Terminal)
    terminal.child = pexpect.spawn(argv[0], argv[1:], env=cli_env(home, TERM="xterm"),
                                   dimensions=(24, 100), encoding="utf-8", timeout=10)
    return terminal


def test_missing_password_is_named_at_once(server_factory):
    server = server_factory(password=PASSWORD)
    client = JsonClient(server.port)
    try:
        started = time.monotonic()
        client.send({"type": "hello", "version": 1, "nick": "nopw"})
        error = client.expect("error")
        assert error["code"] == "bad_password"
        assert error["message"] == "this server needs a password"
        assert time.monotonic() - started < 0.8  # not a guess: no delay, nothing counted
    finally:
        client.close()


def test_clients_say_the_server_needs_a_password_and_read_password_file(
        server_factory, tmp_path):
    server = server_factory(password=PASSWORD)
    home = str(tmp_path / "home")
    address = f"127.0.0.1:{server.port}"
    missing = run(home, "send", "--host", address, "--nick", "ci", "hello")
    assert missing.returncode == 4
    assert "Error: this server needs a password; give it with --password-file" \
        in missing.stderr, missing.stderr
    assert "wrong password" not in missing.stderr
    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\nsecond line ignored\n")
    sent = run(home, "send", "--host", address, "--nick", "ci", "--password-file",
               str(secret), "from a file")
    assert sent.returncode == 0, sent.stderr
    joined = run(home, "join", address, "--nick", "bot", "--password-file", str(secret),
                 stdin="piped with a file\n")
    assert joined.returncode == 0, joined.stderr
    assert "<bot> piped with a file" in joined.stdout
    piped_missing = run(home, "join", address, "--nick", "bot2", stdin="x\n")
    assert piped_missing.returncode == 4
    assert "this server needs a password" in piped_missing.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    bad = run(home, "send", "--host", address, "--nick", "ci", "--password-file", str(empty),
              "x")
    assert bad.returncode == 2 and "first line is empty" in bad.stderr


def test_join_in_a_terminal_asks_for_the_password_hidden(server_factory, chatkit_home):
    server = server_factory(password=PASSWORD)
    terminal = spawn(chatkit_home, "join", f"127.0.0.1:{server.port}", "--nick", "dora")
    try:
        terminal.expect("this server needs a password")
        terminal.expect("Password: ")
        terminal.send("a guess\r")
        terminal.expect("wrong password")
        terminal.expect("Password: ")
        terminal.send(PASSWORD + "\r")
        # pinned once the server answered `welcome`, and said then, never unseen
        terminal.expect("pinned its certificate")
        terminal.expect("welcome to test, dora")
        assert PASSWORD not in terminal.child.before and "a guess" not in terminal.child.before
        assert "dora" in server.hub.nicks
        terminal.send("/exit\r")
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()


def test_send_in_a_terminal_asks_for_the_password(server_factory, chatkit_home):
    server = server_factory(password=PASSWORD)
    watcher = JsonClient(server.port)
    try:
        watcher.send({"type": "hello", "version": 1, "nick": "watch", "password": PASSWORD})
        watcher.expect("history_end")
        terminal = spawn(chatkit_home, "send", "--host", f"127.0.0.1:{server.port}", "--nick",
                         "ci", "asked for it")
        try:
            terminal.expect("Password: ")
            terminal.send(PASSWORD + "\r")
            assert terminal.wait_exit() == 0
        finally:
            terminal.close()
        watcher.expect("message", text="asked for it")
    finally:
        watcher.close()


def test_telnet_echo_is_off_for_the_password_only(server_factory):
    server = server_factory(password=PASSWORD)
    person = LineClient(server.port)
    try:
        before = person.read_until_prompt(b"Password: ")
        assert before.endswith(IAC_WILL_ECHO), before
        person.buffer = b""
        person.send_raw(b"nope\r\n")
        before = person.read_until_prompt(b"Password: ")
        assert before.startswith(IAC_WONT_ECHO) and b"!!! wrong password" in before
        assert before.endswith(IAC_WILL_ECHO), before
        person.buffer = b""
        # the client's telnet answer (IAC DO ECHO) is stripped, not taken as a password
        person.send_raw(b"\xff\xfd\x01" + PASSWORD.encode() + b"\r\n")
        before = person.read_until_prompt(b"Nickname: ")
        assert before.startswith(IAC_WONT_ECHO) and IAC_WILL_ECHO not in before, before
        person.buffer = b""
        person.send_raw(b"tom\r\n")
        person.read_until(lambda line: "you joined lobby" in line)
    finally:
        person.close()


def test_a_first_attempt_refused_before_welcome_pins_nothing(server, chatkit_home):
    taken = JsonClient(server.port, "erin")
    try:
        terminal = spawn(chatkit_home, "join", f"127.0.0.1:{server.port}", "--nick", "erin")
        try:
            assert terminal.wait_exit() == 4
            output = terminal.child.before
        finally:
            terminal.close()
        # pinned only once a server answered `welcome` (issue 13, item 10)
        assert "pinned its certificate" not in output
        assert "nickname erin is taken" in output
        assert KnownServers(known_servers_file()).all() == {}
    finally:
        taken.close()


def test_pin_notice_shown_again_after_the_history(server):
    talker = JsonClient(server.port, "talker")
    try:
        for number in range(30):
            talker.request({"type": "msg", "room": "lobby", "text": f"old line {number}"})
        ui = AppRunner(server.port, "alice")
        try:
            ui.wait_seen("end of history")
            wait_for(lambda: "pinned its certificate" in list(ui.app.transcript)[-1],
                     message="the pin notice after the history")
            lines = list(ui.app.transcript)
            last_history = max(i for i, line in enumerate(lines) if "old line" in line)
            notes = [i for i, line in enumerate(lines) if "pinned its certificate" in line]
            assert notes[-1] > last_history, lines
        finally:
            ui.close()
    finally:
        talker.close()


def test_reconnect_after_fixing_trust(server_factory, tmp_path):
    server = server_factory()
    port = server.port
    ui = AppRunner(port, "alice")
    try:
        ui.wait_seen("you joined lobby")
        server.stop()
        cert, key = tmp_path / "new-cert.pem", tmp_path / "new-key.pem"
        ensure_certificate(cert, key, "elsewhere", ["127.0.0.1"])
        server_factory(port=port, tls_cert=str(cert), tls_key=str(key))
        ui.wait_seen("giving up: SERVER IDENTITY CHANGED")
        assert ui.seen("/reconnect")
        assert ui.app.session.state == "failed"
        # the user trusts the change (`chatkit trust --forget`), then types /reconnect
        assert KnownServers(known_servers_file()).forget(f"127.0.0.1:{port}")
        ui.type("/reconnect" + ENTER)
        ui.wait_seen("reconnected to test as alice")
        ui.type("after the fix" + ENTER)
        ui.wait_seen("<alice> after the fix")
        ui.type("/reconnect" + ENTER)
        ui.wait_seen("already connected")
    finally:
        ui.close()


def test_discovery_announces_whether_a_password_is_needed(server_factory):
    from chatkit.discovery import parse_server_info

    locked = server_factory(password=PASSWORD)
    open_ = server_factory()
    assert parse_server_info(locked.info())["password"] is True
    assert parse_server_info(open_.info())["password"] is False
