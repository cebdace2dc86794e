"""Accounts through real connections: register, identify (in the hello and later), a
registered nickname nobody else can take (JSON and nc), passwd, unregister, throttling,
--require-account, the message of the day, and no password anywhere it should not be."""

from __future__ import annotations

import logging
import socket

from helpers import JsonClient, TextClient, wait_for

PASSWORD = "correct horse"


class _NoTelnet:
    """A socket whose reads drop the telnet echo offers around password prompts (what a
    terminal running nc would not show)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size).replace(b"\xff\xfb\x01", b"").replace(b"\xff\xfc\x01",
                                                                              b"")

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class NcClient(TextClient):
    def __init__(self, port: int, nick: str | None = None) -> None:
        super().__init__(port, None)
        self.sock = _NoTelnet(self.sock)  # type: ignore[assignment]
        if nick is not None:
            self.expect_prompt()
            self.say(nick)
            self.read_until(lambda line: "you joined lobby" in line)


def register(client: JsonClient, password: str = PASSWORD) -> dict:
    answer = client.request({"type": "register", "password": password})
    assert answer["type"] == "account", answer
    return answer


def hello(port: int, nick: str, **extra) -> JsonClient:
    client = JsonClient(port)
    client.send({"type": "hello", "version": 1, "nick": nick, "room": "lobby", **extra})
    return client


def test_register_then_the_name_is_kept_for_its_owner(server) -> None:
    alice = JsonClient(server.port, "alice")
    answer = register(alice)
    assert answer["event"] == "registered" and answer["account"] == "alice"
    alice.close()
    wait_for(lambda: "alice" not in server.hub.nicks)
    # someone else cannot take it
    mallory = hello(server.port, "alice")
    error = mallory.expect("error")
    assert error["code"] == "nick_registered"
    mallory.send({"type": "hello", "version": 1, "nick": "alice", "identify": "guess123"})
    assert mallory.expect("error")["code"] == "bad_login"
    mallory.close()
    # the owner logs in with the hello
    back = hello(server.port, "Alice", identify=PASSWORD)
    back.expect("welcome")
    assert back.expect("account")["event"] == "identified"
    back.close()


def test_the_owner_takes_its_name_back_from_a_ghost(server) -> None:
    alice = JsonClient(server.port, "alice")
    register(alice)
    # the old connection lingers (laptop asleep); a new one with the password takes over
    again = hello(server.port, "alice", identify=PASSWORD)
    again.expect("welcome")
    assert alice.read_until_eof() is not None
    again.close()
    alice.close()


def test_nc_user_is_asked_for_the_password_of_a_registered_nick(server) -> None:
    alice = JsonClient(server.port, "alice")
    register(alice)
    alice.close()
    wait_for(lambda: "alice" not in server.hub.nicks)
    nc = NcClient(server.port)
    nc.expect_prompt()
    nc.say("alice")
    nc.read_until_prompt(b"(/cancel: choose another nickname): ")
    nc.say("wrong-one")
    nc.expect("wrong password for alice")
    nc.expect_prompt()
    nc.say("alice")
    nc.read_until_prompt(b"(/cancel: choose another nickname): ")
    nc.say("/cancel")
    nc.expect_prompt()
    nc.say("alice")
    nc.read_until_prompt(b"(/cancel: choose another nickname): ")
    nc.say(PASSWORD)
    nc.expect("you joined lobby")
    nc.close()


def test_nc_user_registers_and_identifies_with_prompted_lines(server) -> None:
    nc = NcClient(server.port, "bob")
    nc.say("/register")
    nc.read_until_prompt(b"New password: ")
    nc.say("hunter22")
    nc.expect("you registered the account bob")
    nc.say("/passwd")
    nc.read_until_prompt(b"New password: ")
    nc.say("hunter33")
    nc.expect("password changed")
    nc.close()
    wait_for(lambda: "bob" not in server.hub.nicks)
    guest = NcClient(server.port, "guest")
    guest.say("/identify bob")
    guest.read_until_prompt(b"Password: ")
    guest.say("hunter33")
    guest.expect("you are logged in as bob")
    guest.say("/unregister")
    guest.read_until_prompt(b"Password: ")
    guest.say("hunter33")
    guest.expect("your account is no more")
    guest.close()
    assert not server.hub.accounts.is_registered("bob")


def test_a_registered_nick_cannot_be_taken_with_nick(server) -> None:
    alice = JsonClient(server.port, "alice")
    register(alice)
    alice.close()
    wait_for(lambda: "alice" not in server.hub.nicks)
    bob = JsonClient(server.port, "bob")
    assert bob.request({"type": "nick", "nick": "ALICE"})["code"] == "nick_registered"
    # once logged in to the account, the nickname is the owner's to take
    bob.request({"type": "identify", "account": "alice", "password": PASSWORD})
    assert bob.request({"type": "nick", "nick": "alice"})["type"] == "nick"
    bob.close()


def test_weak_and_missing_passwords_are_refused(server) -> None:
    carol = JsonClient(server.port, "carol")
    assert carol.request({"type": "register", "password": "abc"})["code"] == "weak_password"
    assert carol.request({"type": "register"})["code"] == "bad_frame"
    assert carol.request({"type": "passwd", "password": "abcdefg"})["code"] == "no_account"
    carol.close()


def test_login_attempts_are_throttled_per_account(server) -> None:
    owner = JsonClient(server.port, "dave")
    register(owner)
    guesser = JsonClient(server.port, "guesser")
    codes = [guesser.request({"type": "identify", "account": "dave", "password": f"guess{i}"},
                             timeout=10)["code"] for i in range(7)]
    assert codes[:5] == ["bad_login"] * 5
    assert "too_many_attempts" in codes[5:]
    owner.close()
    guesser.close()


def test_require_account_keeps_guests_to_registering(server_factory) -> None:
    server = server_factory(require_account=True)
    guest = hello(server.port, "erin")
    guest.expect("welcome")
    assert "needs an account" in guest.expect("notice")["text"]
    answer = guest.request({"type": "join", "room": "lobby"})
    assert answer["code"] == "account_required"
    register(guest)
    assert guest.request({"type": "join", "room": "lobby"})["type"] == "joined"
    guest.close()


def test_motd_at_welcome_and_on_request(server_factory, tmp_path) -> None:
    motd = tmp_path / "motd.txt"
    motd.write_text("be kind\nno \x1b[31mcolours\n")
    server = server_factory(motd_file=str(motd))
    client = hello(server.port, "frank")
    client.expect("welcome")
    assert client.expect("notice")["text"] == "be kind"
    assert client.expect("notice")["text"] == "no colours"
    motd.write_text("new rules\n")
    server.reload()
    assert client.request({"type": "motd"})["text"] == "new rules"
    client.close()


def test_no_password_in_the_log(server, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="chatkit")
    alice = JsonClient(server.port, "alice")
    register(alice, "s3cret-pass")
    alice.request({"type": "identify", "password": "wrong-pass-1"})
    alice.request({"type": "passwd", "password": "n3w-s3cret"})
    alice.close()
    text = caplog.text
    for secret in ("s3cret-pass", "wrong-pass-1", "n3w-s3cret", "scrypt$"):
        assert secret not in text


def test_register_twice_is_refused(server) -> None:
    alice = JsonClient(server.port, "alice")
    register(alice)
    assert alice.request({"type": "register", "password": PASSWORD})["code"] == \
        "nick_registered"
    alice.close()
