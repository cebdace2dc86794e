"""Accounts in the chatkit clients, against a real server: /register with a hidden prompt
(never in the input history), logging in again by itself after a reconnect, /remember
(a 0600 file) and the next `chatkit join` logging in with it, operator commands in /help and
Tab completion, /who marks."""

from __future__ import annotations

import json
import stat
import subprocess

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from test_client_app import ENTER, AppRunner

from chatkit import paths
from chatkit.client.accounts import Credentials

from helpers import JsonClient, chatkit_cmd, cli_env, wait_for

PASSWORD = "correct horse"


def complete(ui: AppRunner, text: str) -> list:
    return list(ui.app.completer.get_completions(Document(text, len(text)),
                                                 CompleteEvent(completion_requested=True)))


def test_register_hidden_then_reconnect_logs_in_by_itself(server) -> None:
    ui = AppRunner(server.port, "alice")
    try:
        ui.wait_seen("you joined lobby")
        ui.type("/register" + ENTER)
        ui.type(PASSWORD + ENTER)  # the hidden prompt
        ui.type(PASSWORD + ENTER)  # again
        ui.wait_seen("you registered the account alice")
        ui.wait_seen("/remember to log in to alice by yourself")
        assert server.hub.accounts.is_registered("alice")
        # the password never reached the screen's transcript nor the input history
        assert not ui.seen(PASSWORD)
        history = list(ui.app.prompt_session.history.load_history_strings())
        assert "/register" in history and PASSWORD not in history
        # the connection drops; the reconnect's hello logs in before anyone takes the name
        with server.hub.lock:
            member = server.hub.nicks["alice"]
        member.end("test: cut")
        wait_for(lambda: (m := server.hub.nicks.get("alice")) is not None and m is not member
                 and m.account == "alice", message="alice logged in again")
        ui.type("/remember" + ENTER)
        ui.wait_seen("remembered")
        path = paths.credentials_file()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())[ui.app.session.address]["alice"] == \
            ["alice", PASSWORD]
        ui.type("/forget" + ENTER)
        ui.wait_seen("forgotten")
        assert "alice" not in json.dumps(json.loads(path.read_text()))
    finally:
        ui.close()


def test_operator_commands_in_help_and_tab(server) -> None:
    ui = AppRunner(server.port, "alice")
    bob = JsonClient(server.port, "bob")
    try:
        ui.wait_seen("you joined lobby")
        ui.type("/register" + ENTER + PASSWORD + ENTER + PASSWORD + ENTER)
        ui.wait_seen("you registered the account alice")
        assert not any(spec.name == "kick" for spec in ui.app.session.commands)
        ui.type("/join dev" + ENTER)  # founds dev: now an operator
        ui.wait_seen("you joined dev")
        ui.type("/help" + ENTER)
        ui.wait_seen("/kick NICK [REASON]")
        bob.request({"type": "join", "room": "dev"})
        ui.wait_seen("bob joined dev")
        # Tab offers the operator commands now, and nicknames after them
        assert [c.text for c in complete(ui, "/kic")] == ["/kick "]
        assert [c.text for c in complete(ui, "/kick bo")] == ["bob "]
        ui.type("/kick bob" + ENTER)
        assert bob.expect("part")["reason"] == "kicked by alice"
        ui.type("/who dev" + ENTER)
        ui.wait_seen("@alice")
    finally:
        bob.close()
        ui.close()


def test_piped_join_logs_in_with_a_remembered_password(server, chatkit_home) -> None:
    owner = JsonClient(server.port, "carol")
    owner.request({"type": "register", "password": PASSWORD})
    owner.close()
    wait_for(lambda: "carol" not in server.hub.nicks)
    address = f"127.0.0.1:{server.port}"
    # without the password a piped client (no terminal to ask on) is refused
    refused = subprocess.run(chatkit_cmd("join", address, "--nick", "carol", "--no-tls"),
                             input="", capture_output=True, text=True,
                             env=cli_env(chatkit_home), timeout=30)
    assert refused.returncode == 4 and "registered" in refused.stderr
    Credentials().put(address, "carol", PASSWORD)  # as /remember saves it
    joined = subprocess.run(chatkit_cmd("join", address, "--nick", "carol", "--no-tls"),
                            input="/who\n", capture_output=True, text=True,
                            env=cli_env(chatkit_home), timeout=30)
    assert joined.returncode == 0, joined.stderr
    assert "logged in as carol" in joined.stdout
    assert PASSWORD not in joined.stdout + joined.stderr


def test_piped_join_registers_with_the_next_line(server, chatkit_home) -> None:
    address = f"127.0.0.1:{server.port}"
    done = subprocess.run(chatkit_cmd("join", address, "--nick", "dave", "--no-tls"),
                          input=f"/register\n{PASSWORD}\n/who\n", capture_output=True,
                          text=True, env=cli_env(chatkit_home), timeout=30)
    assert done.returncode == 0, done.stderr
    assert "you registered the account dave" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    assert server.hub.accounts.is_registered("dave")


def test_a_real_terminal_never_shows_the_password(server, chatkit_home) -> None:
    """In a pseudo-terminal: the password prompts echo nothing (prompt_toolkit
    `is_password` draws asterisks), and a registered nickname's password is asked for."""
    from test_client_e2e import Terminal

    secret = "tty-secret-1"
    terminal = Terminal(server.port, chatkit_home, "zed")
    seen = []
    terminal.child.logfile_read = _Collect(seen)
    try:
        terminal.expect("you joined lobby")
        terminal.send("/register\r")
        terminal.expect("New password for zed")
        terminal.send(secret + "\r")
        terminal.expect("Again")
        terminal.send(secret + "\r")
        terminal.expect("you registered the account zed")
        terminal.send("/quit\r")
        assert terminal.wait_exit() == 0
    finally:
        terminal.close()
    assert secret not in "".join(seen)
    # the next run of chatkit join asks for the registered nickname's password, hidden
    again = Terminal(server.port, chatkit_home, "zed")
    seen.clear()
    again.child.logfile_read = _Collect(seen)
    try:
        again.expect("registered account")
        again.expect("Password")
        again.send(secret + "\r")
        again.expect("you are logged in as zed")
        again.send("/quit\r")
        assert again.wait_exit() == 0
    finally:
        again.close()
    assert secret not in "".join(seen)


class _Collect:
    """A pexpect log file that keeps everything the terminal showed."""

    def __init__(self, into: list) -> None:
        self.into = into

    def write(self, text: str) -> None:
        self.into.append(text)

    def flush(self) -> None:
        pass


def test_chatkit_send_logs_in_with_a_remembered_password(server, chatkit_home) -> None:
    owner = JsonClient(server.port, "bot")
    owner.request({"type": "register", "password": PASSWORD})
    owner.close()
    wait_for(lambda: "bot" not in server.hub.nicks)
    address = f"127.0.0.1:{server.port}"
    command = chatkit_cmd("send", "--host", address, "--nick", "bot", "--room", "lobby",
                          "--no-tls")
    refused = subprocess.run(command, input="hello\n", capture_output=True, text=True,
                             env=cli_env(chatkit_home), timeout=30)
    assert refused.returncode == 4 and "registered" in refused.stderr
    Credentials().put(address, "bot", PASSWORD)
    sent = subprocess.run(command, input="hello\n", capture_output=True, text=True,
                          env=cli_env(chatkit_home), timeout=30)
    assert sent.returncode == 0, sent.stderr
