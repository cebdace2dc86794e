"""The IRC door with real IRC clients (issue 17): weechat-headless and irssi talk with a chatkit
JSON client and an nc text client in the same rooms, both ways: messages, /me, topics, nick
changes, private messages, the backlog with its real times, and TLS pinned by fingerprint."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from chatkit.store import MessageStore, StoredMessage
from chatkit.tls.certificates import fingerprint_hex

from helpers import JsonClient, TextClient, wait_for
from ircclients import HAVE_IRSSI, HAVE_WEECHAT, Irssi, Weechat

needs_weechat = pytest.mark.skipif(not HAVE_WEECHAT, reason="weechat-headless not installed")
needs_irssi = pytest.mark.skipif(not HAVE_IRSSI, reason="irssi or tmux not installed")
pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def weechats(tmp_path) -> Iterator:
    started: list[Weechat] = []

    def start(port: int, nick: str, **options: object) -> Weechat:
        client = Weechat(tmp_path / f"weechat-{nick}", port, nick, **options)  # type: ignore
        started.append(client)
        return client

    yield start
    for client in started:
        client.close()


@pytest.fixture
def clients() -> Iterator[list]:
    opened: list = []
    yield opened
    for client in opened:
        client.close()


@needs_weechat
def test_weechat_talks_with_a_chatkit_client_and_an_nc_user(server_factory, weechats, clients):
    server = server_factory(irc_port=0)
    alice = JsonClient(server.port, "alice")
    carol = TextClient(server.port, "carol")
    clients += [alice, carol]
    wee = weechats(server.irc_port, "wee")
    alice.expect("join", room="lobby", nick="wee", timeout=15)
    wee.wait_log("#lobby", r"wee \(wee@chatkit\) has joined #lobby")

    # chatkit and nc -> IRC
    alice.send({"type": "msg", "room": "lobby", "text": "hello from chatkit ✓"})
    wee.wait_log("#lobby", r"\talice\thello from chatkit ✓$")
    carol.say("hi from nc")
    wee.wait_log("#lobby", r"\tcarol\thi from nc$")
    alice.send({"type": "me", "room": "lobby", "text": "waves"})
    wee.wait_log("#lobby", r"\t \*\talice waves$")

    # IRC -> chatkit and nc
    wee.command("#lobby", "hello from weechat")
    alice.expect("message", nick="wee", text="hello from weechat")
    carol.expect("[lobby] <wee> hello from weechat")
    wee.command("#lobby", "/me dances")
    alice.expect("message", nick="wee", text="dances", action=True)
    carol.expect("[lobby] * wee dances")

    # topics both ways
    wee.command("#lobby", "/topic release on Friday")
    alice.expect("topic", room="lobby", nick="wee", text="release on Friday")
    alice.send({"type": "topic", "room": "lobby", "text": "no, Monday"})
    wee.wait_log("#lobby", r"alice has changed topic for #lobby .*no, Monday")

    # private messages both ways
    alice.send({"type": "privmsg", "to": "wee", "text": "psst"})
    wee.wait_log("alice", r"\talice\tpsst$")
    wee.command("alice", "psst back")
    alice.expect("private", **{"from": "wee", "to": "alice", "text": "psst back"})

    # nick changes seen on both sides
    wee.command("#lobby", "/nick weechat2")
    alice.expect("nick", old="wee", new="weechat2")
    carol.expect("wee is now known as weechat2")
    alice.send({"type": "nick", "nick": "alice2"})
    wee.wait_log("#lobby", r"alice is now known as alice2")


@needs_weechat
def test_weechat_gets_the_backlog_with_its_real_times(server_factory, weechats, tmp_path):
    # Two messages from yesterday in the log: weechat must show them at their own times
    # (server-time), not at the moment they were replayed.
    db = tmp_path / "messages.db"
    then = time.time() - 86400
    store = MessageStore(db)
    store.append([StoredMessage(1, "lobby", "message", "alice", None, "from yesterday", then),
                  StoredMessage(2, "lobby", "action", "bob", None, "yawns", then + 61)])
    store.close()
    server = server_factory(irc_port=0, db=str(db))
    wee = weechats(server.irc_port, "wee")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(then)))
    wee.wait_log("#lobby", rf"^{stamp}\talice\tfrom yesterday$")
    later = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(then + 61)))
    wee.wait_log("#lobby", rf"^{later}\t \*\tbob yawns$")
    assert "server-time" in wee.log("server")


@needs_weechat
def test_weechat_over_tls_accepts_the_certificate_by_fingerprint(server_factory, weechats,
                                                                  clients):
    server = server_factory(irc_tls_port=0)
    assert server.fingerprint is not None
    pin = (fingerprint_hex(server.fingerprint) or "").replace(":", "").lower()
    alice = JsonClient(server.port, "alice")
    clients.append(alice)
    wee = weechats(server.irc_tls_port, "secure", fingerprint=pin)
    alice.expect("join", room="lobby", nick="secure", timeout=15)
    wee.wait_log("#lobby", r"secure \(secure@chatkit\) has joined #lobby")
    wee.command("#lobby", "over TLS")
    alice.expect("message", nick="secure", text="over TLS")
    alice.send({"type": "msg", "room": "lobby", "text": "and back"})
    wee.wait_log("#lobby", r"\talice\tand back$")


@needs_irssi
def test_irssi_talks_with_a_chatkit_client(server_factory, tmp_path, clients):
    server = server_factory(irc_port=0)
    alice = JsonClient(server.port, "alice")
    clients.append(alice)
    irssi = Irssi(tmp_path / "irssi", server.irc_port, "irs")
    try:
        wait_registered(alice, "irs")
        irssi.type("/join #lobby")
        alice.expect("join", room="lobby", nick="irs", timeout=15)
        alice.send({"type": "msg", "room": "lobby", "text": "hello irssi"})
        irssi.wait_log("#lobby", r"<.alice> hello irssi")
        irssi.type("hello chatkit")
        alice.expect("message", nick="irs", text="hello chatkit")
        irssi.type("/me nods")
        alice.expect("message", nick="irs", text="nods", action=True)
        alice.send({"type": "me", "room": "lobby", "text": "smiles"})
        irssi.wait_log("#lobby", r"\* alice smiles")
        irssi.type("/msg alice in private")
        alice.expect("private", **{"from": "irs", "text": "in private"})
        alice.send({"type": "privmsg", "to": "irs", "text": "private reply"})
        irssi.wait_log("alice", r"<alice> private reply")
        irssi.type("/nick irs2")
        alice.expect("nick", old="irs", new="irs2")
        alice.send({"type": "topic", "room": "lobby", "text": "set by chatkit"})
        irssi.wait_log("#lobby", r"alice changed the topic of #lobby to: set by chatkit")
    finally:
        irssi.close()


def wait_registered(client: JsonClient, nick: str) -> None:
    """Until `nick` is connected (a `who` of everyone lists it)."""
    wait_for(lambda: any(user["nick"] == nick for user in
                         client.request({"type": "who"}).get("users", [])),
             timeout=15, message=f"{nick} connected")


@needs_irssi
def test_irssi_over_tls_with_the_pinned_certificate(server_factory, tmp_path, clients):
    server = server_factory(irc_tls_port=0)
    assert server.fingerprint is not None
    alice = JsonClient(server.port, "alice")
    clients.append(alice)
    irssi = Irssi(tmp_path / "irssi", None, "sec")
    try:
        irssi.type(f"/connect -tls -tls_pinned_cert {fingerprint_hex(server.fingerprint)} "
                   f"127.0.0.1 {server.irc_tls_port}")
        wait_registered(alice, "sec")
        irssi.type("/join #lobby")
        alice.expect("join", room="lobby", nick="sec", timeout=15)
        irssi.type("pinned and private")
        alice.expect("message", nick="sec", text="pinned and private")
    finally:
        irssi.close()
