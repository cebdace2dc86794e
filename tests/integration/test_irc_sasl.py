"""SASL PLAIN on the IRC door over raw sockets (docs/irc.md, docs/accounts.md): CAP LS 302
advertises `sasl=PLAIN`, a right password logs in and the registered nickname is the owner's
(its ghost replaced), a wrong one is 904 and the client may retry or stay a guest, long answers
come in 400-byte pieces, the hub's throttling counts SASL attempts, no password is logged;
and weechat and irssi logging in with their own SASL settings."""

from __future__ import annotations

import base64
import logging
import re

import pytest

from helpers import DEFAULT_TIMEOUT, JsonClient, LineClient, wait_for
from ircclients import HAVE_IRSSI, HAVE_WEECHAT, Irssi, Weechat

PASSWORD = "correct horse"
pytestmark = pytest.mark.timeout(60)


class SaslClient(LineClient):
    """A raw IRC connection that negotiates SASL before registering."""

    def say(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def expect(self, pattern: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return self.read_until(lambda line: re.search(pattern, line) is not None, timeout)

    def start(self, nick: str) -> None:
        """CAP LS 302, NICK, USER, CAP REQ sasl: registration held until CAP END."""
        self.say("CAP LS 302", f"NICK {nick}", "USER u 0 * :real name", "CAP REQ :sasl")
        self.expect(r"CAP \* ACK :sasl")

    def plain(self, account: str, password: str, authzid: str = "") -> None:
        """AUTHENTICATE PLAIN and the answer, in 400-byte pieces (`+` after a full last one)."""
        self.say("AUTHENTICATE PLAIN")
        self.expect(r"^AUTHENTICATE \+$")
        answer = base64.b64encode(f"{authzid}\0{account}\0{password}".encode()).decode()
        pieces = [answer[i:i + 400] for i in range(0, len(answer), 400)]
        if len(pieces[-1]) == 400:
            pieces.append("+")
        self.say(*(f"AUTHENTICATE {piece}" for piece in pieces))






def registered_account(port: int, name: str, password: str = PASSWORD) -> JsonClient:
    """A JSON client that made its nickname `name` an account (and stays connected)."""
    client = JsonClient(port, name, room=None)
    answer = client.request({"type": "register", "password": password})
    assert answer["type"] == "account", answer
    return client


def irc(irc_server, opened: list) -> SaslClient:
    client = SaslClient(irc_server.irc_port)
    opened.append(client)
    return client


def test_sasl_plain_logs_in_to_the_registered_nickname(irc_server, opened, caplog):
    caplog.set_level(logging.DEBUG, logger="chatkit")
    registered_account(irc_server.port, "alice").close()
    client = irc(irc_server, opened)
    client.say("CAP LS 302")
    assert "sasl=PLAIN" in client.expect(r"CAP \* LS :").split(" :", 1)[1].split()
    client.start("alice")
    client.plain("alice", PASSWORD, authzid="alice")
    assert re.search(r" 900 \* alice!alice@\S+ alice :You are now logged in as alice",
                     client.expect(" 900 "))
    client.expect(r" 903 \* :SASL authentication successful")
    client.say("CAP END")
    client.expect(r" 001 alice ")
    client.expect(" 376 ")
    client.say("AUTHENTICATE PLAIN")  # once is enough
    client.expect(r" 907 alice :You have already authenticated")
    client.say("JOIN #lobby")
    client.expect(r" 366 alice #lobby ")
    assert PASSWORD not in caplog.text
    assert base64.b64encode(f"alice\0alice\0{PASSWORD}".encode()).decode() not in caplog.text


def test_the_owner_takes_the_nickname_back_from_its_ghost_by_sasl(irc_server, opened):
    ghost = registered_account(irc_server.port, "bob")  # still connected
    opened.append(ghost)
    client = irc(irc_server, opened)
    client.start("bob")
    client.plain("bob", PASSWORD)
    client.expect(" 903 ")
    client.say("CAP END")
    client.expect(r" 001 bob ")
    for _ in range(20):  # the ghost's connection is ended (bounded: each read has a deadline)
        if ghost.read_frame() is None:
            break
    else:
        raise AssertionError("the ghost's connection is still open")


def test_wrong_password_is_904_then_a_retry_may_succeed(irc_server, opened):
    registered_account(irc_server.port, "carol").close()
    client = irc(irc_server, opened)
    client.start("carol")
    client.plain("carol", "not the password")
    assert "wrong password" in client.expect(r" 904 \* :SASL authentication failed")
    client.plain("carol", PASSWORD)
    client.expect(" 903 ")
    client.say("CAP END")
    client.expect(r" 001 carol ")


def test_a_failed_login_stays_a_guest_kept_off_the_registered_nick(irc_server, opened):
    registered_account(irc_server.port, "dave").close()
    client = irc(irc_server, opened)
    client.start("dave")
    client.plain("dave", "not the password")
    client.expect(" 904 ")
    client.say("CAP END")
    assert "log in with SASL" in client.expect(r" 433 \* dave ")
    client.say("NICK dave_guest")
    client.expect(r" 001 dave_guest ")
    client.say("AUTHENTICATE PLAIN")  # only before registration
    client.expect(r" 904 dave_guest :SASL authentication failed: SASL is only available "
                  "before registration")


def test_an_account_cannot_take_another_accounts_nickname(irc_server, opened):
    registered_account(irc_server.port, "erin").close()
    registered_account(irc_server.port, "frank").close()
    client = irc(irc_server, opened)
    client.start("frank")
    client.plain("erin", PASSWORD)
    client.expect(" 903 ")
    client.say("CAP END")
    client.expect(r" 433 \* frank ")
    client.say("NICK erin_irc")  # any free nickname, logged in to erin
    client.expect(r" 001 erin_irc ")
    client.say("NICK erin")  # the account's own nickname is theirs to take
    client.expect(r":erin_irc!\S+ NICK :?erin")


def test_long_answers_come_in_400_byte_pieces(irc_server, opened):
    long_password = "é" * 250  # 500 bytes: base64 of the answer takes two pieces
    exact_password = "é" * 146 + "x"  # "\0gil\0" + 293 bytes: exactly 400, then "+"
    for nick, password in (("gil", long_password), ("hal", exact_password)):
        registered_account(irc_server.port, nick, password).close()
        client = irc(irc_server, opened)
        client.start(nick)
        client.plain(nick, password)
        client.expect(" 903 ")
        client.say("CAP END")
        client.expect(f" 001 {nick} ")


def test_mechanisms_abort_and_the_capability_asked_first(irc_server, opened):
    client = irc(irc_server, opened)
    client.say("CAP LS 302", "NICK ivy", "USER u 0 * :real name")
    client.expect(r"CAP \* LS :")
    client.say("AUTHENTICATE PLAIN")  # sasl not requested yet
    client.expect(r" 904 \* :SASL authentication failed: request the sasl capability")
    client.say("CAP REQ :sasl", "AUTHENTICATE SCRAM-SHA-256")
    client.expect(r" 908 \* PLAIN :are available SASL mechanisms")
    client.expect(" 904 ")
    client.say("AUTHENTICATE PLAIN")
    client.expect(r"^AUTHENTICATE \+$")
    client.say("AUTHENTICATE *")
    client.expect(r" 906 \* :SASL authentication aborted")
    client.say("AUTHENTICATE PLAIN", "AUTHENTICATE " + "A" * 401)
    client.expect(r" 905 \* :SASL message too long")
    client.say("AUTHENTICATE PLAIN")
    client.expect(r"^AUTHENTICATE \+$")
    client.say("CAP END")  # registering ends the open exchange
    client.expect(r" 906 \* ")
    client.expect(r" 001 ivy ")


def test_sasl_attempts_count_against_the_hubs_throttling(irc_server, opened):
    registered_account(irc_server.port, "jack").close()
    client = irc(irc_server, opened)
    client.start("jack")
    for n in range(5):  # the burst of five attempts, each a wrong password
        client.plain("jack", f"guess {n}")
        assert "wrong password" in client.expect(" 904 ", timeout=10)
    client.plain("jack", PASSWORD)  # even the right one now waits
    assert "too many login attempts" in client.expect(" 904 ", timeout=10)
    # the same buckets as the JSON door's identify
    other = JsonClient(irc_server.port, "kim")
    opened.append(other)
    answer = other.request({"type": "identify", "account": "jack", "password": PASSWORD})
    assert answer["code"] == "too_many_attempts"
    client.say("CAP END")
    client.expect(r" 433 \* jack ")


@pytest.mark.skipif(not HAVE_WEECHAT, reason="weechat-headless not installed")
def test_weechat_logs_in_to_a_registered_account_with_sasl(irc_server, opened, tmp_path):
    registered_account(irc_server.port, "wsasl").close()
    watcher = JsonClient(irc_server.port, "watcher")
    opened.append(watcher)
    wee = Weechat(tmp_path / "weechat", irc_server.irc_port, "wsasl",
                  sasl=("wsasl", PASSWORD))
    opened.append(wee)
    wee.wait_log("server", r"SASL authentication successful")
    # bounded, but generous: weechat starts slowly on a loaded machine
    watcher.expect("join", timeout=20, nick="wsasl")  # the registered nickname, in the lobby
    # weechat has its #lobby buffer (a line sent to a buffer it has not made yet is lost)
    wee.wait_log("#lobby", r"wsasl \(wsasl@chatkit\) has joined #lobby")
    wee.command("#lobby", "hello as my account")
    watcher.expect("message", timeout=20, nick="wsasl", text="hello as my account")


@pytest.mark.skipif(not HAVE_IRSSI, reason="irssi or tmux not installed")
def test_irssi_logs_in_to_a_registered_account_with_sasl(irc_server, opened, tmp_path):
    password = "horse-battery"  # irssi's /network add takes one word
    registered_account(irc_server.port, "isasl", password).close()
    watcher = JsonClient(irc_server.port, "watcher")
    opened.append(watcher)
    irssi = Irssi(tmp_path / "irssi", None, "isasl")
    try:
        irssi.type(f"/network add -sasl_mechanism PLAIN -sasl_username isasl "
                   f"-sasl_password {password} office")
        wait_for(lambda: "Network office saved" in irssi.screen(), message="network saved")
        irssi.type(f"/server add -network office 127.0.0.1 {irc_server.irc_port}")
        wait_for(lambda: "saved" in irssi.screen().split("Network office saved")[-1],
                 message="server saved")
        irssi.type("/connect office")
        try:
            wait_for(lambda: "End of /MOTD" in irssi.screen(), timeout=15,
                     message="irssi's registration")
            assert "SASL authentication succeeded" in irssi.screen()
        except AssertionError:
            raise AssertionError(f"no SASL login; irssi shows {irssi.screen()!r}") from None
        irssi.type("/join #lobby")
        try:
            watcher.expect("join", room="lobby", nick="isasl", timeout=15)
        except AssertionError:
            raise AssertionError(f"no join; irssi shows {irssi.screen()!r}") from None
    finally:
        irssi.close()


def test_a_sasl_login_counts_on_a_server_that_needs_an_account(server_factory, opened):
    server = server_factory(irc_port=0, require_account=True)
    registered_account(server.port, "lena").close()
    client = irc(server, opened)
    client.start("lena")
    client.plain("lena", PASSWORD)
    client.expect(" 903 ")
    client.say("CAP END", "JOIN #lobby")
    client.expect(r" 366 lena #lobby ")
