"""`chatkit join` in real pseudo-terminals (pexpect), as a person would use it."""

from __future__ import annotations

import re
import socket
import time

import pexpect
import pytest

from helpers import chatkit_cmd, cli_env

CPR_REQUEST = re.escape("\x1b[6n")


class Terminal:
    """A `chatkit join` process in a pty that answers cursor-position requests like xterm.

    prompt_toolkit asks the terminal where the cursor is (CPR) before drawing the bottom
    toolbar; pexpect is not a terminal emulator, so we answer for it.
    """

    def __init__(self, port: int, home: str, nick: str) -> None:
        argv = chatkit_cmd("join", f"127.0.0.1:{port}", "--nick", nick)
        self.child = pexpect.spawn(argv[0], argv[1:], env=cli_env(home, TERM="xterm"),
                                   dimensions=(24, 100), encoding="utf-8", timeout=5)

    def expect(self, pattern: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(1000):  # bounded: every turn either matches or answers one request
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            index = self.child.expect([pattern, CPR_REQUEST], timeout=remaining)
            if index == 0:
                return
            self.child.send("\x1b[1;1R")
        raise AssertionError(f"{pattern!r} not seen; last output: {self.child.before!r}")

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def wait_exit(self, timeout: float = 10.0) -> int:
        self.expect(pexpect.EOF, timeout)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()


@pytest.fixture
def terminals(server, chatkit_home):
    opened: list[Terminal] = []

    def open_terminal(nick: str) -> Terminal:
        terminal = Terminal(server.port, chatkit_home, nick)
        opened.append(terminal)
        terminal.expect("connected")  # the toolbar is up
        return terminal

    yield open_terminal
    for terminal in opened:
        terminal.close()


def test_two_users_chat_with_completion_and_undisturbed_typing(terminals):
    alice = terminals("alice")
    bob = terminals("bob")
    alice.expect("here: alice, bob")  # the toolbar

    bob.send("hello from bob\r")
    alice.expect("hello from bob")

    alice.send("half typ")  # not sent yet ...
    alice.expect("half typ")
    bob.send("interrupting you\r")
    alice.expect("interrupting you")
    alice.send("ed line\r")  # ... and it survived the incoming message
    bob.expect("half typed line")

    alice.send("/wh\t")
    alice.expect(r"/who")
    alice.send("\r")
    alice.expect("2 connected")

    alice.send("/quit\r")
    assert alice.wait_exit() == 0
    bob.expect("alice quit")
    bob.send("\x04")  # Ctrl-D
    assert bob.wait_exit() == 0


def test_ctrl_c_twice_leaves_cleanly(terminals):
    carol = terminals("carol")
    carol.send("some text\x03")
    carol.send("\x03")
    carol.expect("press Ctrl-C again to leave")
    carol.send("\x03")
    assert carol.wait_exit() == 0


def test_asks_for_the_nick_when_none_is_given(server, chatkit_home):
    argv = chatkit_cmd("join", f"127.0.0.1:{server.port}")
    child = pexpect.spawn(argv[0], argv[1:], env=cli_env(chatkit_home, TERM="xterm"),
                          dimensions=(24, 100), encoding="utf-8", timeout=5)
    terminal = Terminal.__new__(Terminal)
    terminal.child = child
    try:
        terminal.expect("Nickname:")
        terminal.send("9bad\r")
        terminal.expect("invalid nickname")
        terminal.send("dora\r")
        terminal.expect("welcome to test, dora")
        terminal.send("/exit\r")
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()


def spawn_without_nick(port: int, home: str) -> Terminal:
    argv = chatkit_cmd("join", f"127.0.0.1:{port}")
    terminal = Terminal.__new__(Terminal)
    terminal.child = pexpect.spawn(argv[0], argv[1:], env=cli_env(home, TERM="xterm"),
                                   dimensions=(24, 100), encoding="utf-8", timeout=5)
    return terminal


def test_a_dead_server_fails_before_the_nick_is_asked(chatkit_home):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        terminal = spawn_without_nick(port, chatkit_home)
        try:
            assert terminal.wait_exit() == 3
            output = terminal.child.before
        finally:
            terminal.close()
    assert "Nickname:" not in output and f"cannot connect to 127.0.0.1:{port}" in output


def test_a_taken_nick_is_asked_again(server, chatkit_home, terminals):
    terminals("erin")
    terminal = spawn_without_nick(server.port, chatkit_home)
    try:
        terminal.expect("Nickname:")
        terminal.send("Erin\r")
        terminal.expect("nickname Erin is taken")
        terminal.expect("Nickname:")
        terminal.send("fay\r")
        terminal.expect("welcome to test, fay")
        terminal.send("/exit\r")
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()


@pytest.mark.parametrize("key", ["\x03", "\x04"], ids=["ctrl-c", "ctrl-d"])
def test_cancelling_the_nick_question_leaves_silently(server, chatkit_home, key):
    terminal = spawn_without_nick(server.port, chatkit_home)
    try:
        terminal.expect("Nickname:")
        terminal.send(key)
        assert terminal.wait_exit() == 0
        output = terminal.child.before
    finally:
        terminal.close()
    for noise in ("Aborted", "Traceback", "Error", "nickname"):
        assert noise not in output, output


def test_refused_nick_is_one_line_and_status_4(server, chatkit_home, terminals):
    terminals("erin")
    argv = chatkit_cmd("join", f"127.0.0.1:{server.port}", "--nick", "Erin")
    child = pexpect.spawn(argv[0], argv[1:], env=cli_env(chatkit_home, TERM="xterm"),
                          dimensions=(24, 100), encoding="utf-8", timeout=10)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4
    output = child.before.strip()
    assert len(output.splitlines()) == 1 and "Traceback" not in output
