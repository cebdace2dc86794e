"""The IRC door over real sockets, line by line: registration and CAP, the numerics of every
error, UTF-8, 512-byte lines both ways, the same rules as the line door (password, rate,
limits), CHATHISTORY, and the load generator's IRC target."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time

import pytest

from chatkit.bench import BenchConfig, run_bench
from chatkit.protocol import irc
from chatkit.store import MessageStore, StoredMessage

from helpers import (
    DEFAULT_TIMEOUT,
    JsonClient,
    LineClient,
    ServeProcess,
    chatkit_cmd,
    cli_env,
    wait_for,
)


class IrcClient(LineClient):
    """A raw IRC connection that registers and reads lines with deadlines."""

    def __init__(self, port: int, nick: str | None = None, *, caps: str = "",
                 password: str | None = None) -> None:
        super().__init__(port)
        if nick is None:
            return
        try:
            if caps:
                self.say(f"CAP REQ :{caps}")
            if password is not None:
                self.say(f"PASS {password}")
            self.say(f"NICK {nick}", "USER u 0 * :real name")
            if caps:
                self.say("CAP END")
            self.expect(" 376 ")
        except BaseException:
            self.close()
            raise

    def say(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def expect(self, pattern: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return self.read_until(lambda line: re.search(pattern, line) is not None, timeout)

    def join(self, channel: str) -> None:
        self.say(f"JOIN {channel}")
        self.expect(f" 366 \\S+ {re.escape(channel)} ")






def test_registration_with_cap_negotiation(irc_server, opened):
    client = IrcClient(irc_server.irc_port)
    opened.append(client)
    client.say("CAP LS 302", "NICK ann", "USER ann 0 * :Ann")
    ls = client.expect(r"CAP \* LS :")
    assert set(ls.split(" :", 1)[1].split()) == {"away-notify", "batch", "draft/chathistory",
                                                  "echo-message", "message-tags",
                                                  "sasl=PLAIN", "server-time"}
    client.say("CAP REQ :server-time bogus-cap")
    client.expect(r"CAP \* NAK :server-time bogus-cap")
    client.say("CAP REQ :server-time echo-message", "CAP LIST")
    client.expect(r"CAP \* ACK :server-time echo-message")
    client.expect(r"CAP \* LIST :echo-message server-time")
    assert not any(" 001 " in line for line in client.lines)  # held until CAP END
    client.say("CAP END")
    client.expect(" 001 ann :Welcome")
    isupport = " ".join(line for line in client.lines if " 005 " in line)
    client.expect(" 376 ")
    for token in ("CHANTYPES=#", "NICKLEN=24", "CHANNELLEN=33", "CASEMAPPING=rfc8265",
                  "LINELEN=512"):
        assert token in isupport or token in " ".join(client.lines)


def test_errors_have_their_numerics(irc_server, opened):
    alice = IrcClient(irc_server.irc_port, "alice")
    opened.append(alice)
    taken = IrcClient(irc_server.irc_port)
    opened.append(taken)
    taken.say("PRIVMSG #lobby :too early")
    taken.expect(r" 451 \* :You have not registered")
    taken.say("NICK Alice", "USER u 0 * :u")
    taken.expect(r" 433 \* Alice :Nickname is already in use")
    taken.say("NICK 9lives")
    taken.expect(r" 432 \* 9lives :Erroneous nickname")
    taken.say("NICK bob")
    taken.expect(" 001 bob ")
    for line, numeric in [("FROB", r" 421 bob FROB :Unknown command"),
                          ("JOIN", r" 461 bob JOIN :Not enough parameters"),
                          ("PRIVMSG carol :hi", r" 401 bob carol :No such nick"),
                          ("PRIVMSG #dev :hi", r" 404 bob #dev :"),
                          ("PART #dev", r" 442 bob #dev :"),
                          ("TOPIC #nowhere", r" 442 bob #nowhere :"),
                          ("MODE #nowhere", r" 403 bob #nowhere :No such channel"),
                          ("JOIN #bad!name", r" 403 bob #bad!name :"),
                          ("PRIVMSG #lobby", r" 412 bob :No text to send"),
                          ("PRIVMSG", r" 411 bob :No recipient"),
                          ("USER again 0 * :x", r" 462 bob :"),
                          ("WHOIS nobody", r" 401 bob nobody :")]:
        taken.say(line)
        taken.expect(numeric)


def test_a_line_that_is_not_utf8_gets_a_notice_and_the_connection_stays(irc_server, opened):
    client = IrcClient(irc_server.irc_port, "ann")
    opened.append(client)
    client.sock.sendall(b"PRIVMSG #lobby :caf\xe9\r\n")
    client.expect(r"NOTICE ann :that line was not UTF-8 and was ignored")
    client.say("PING :still-here")
    client.expect(r"PONG \S+ :still-here")


def test_long_messages_are_split_in_512_byte_lines_without_cutting_characters(irc_server,
                                                                               opened):
    watcher = IrcClient(irc_server.irc_port, "watcher", caps="message-tags")
    opened.append(watcher)
    watcher.join("#lobby")
    alice = JsonClient(irc_server.port, "alice")
    opened.append(alice)
    text = "日本語のテキスト " * 150  # 3,600 bytes of three-byte characters
    alice.send({"type": "msg", "room": "lobby", "text": text.strip()})
    got = []
    while "".join(got).replace(" ", "") != text.replace(" ", ""):
        line = watcher.expect(r"PRIVMSG #lobby :")
        tags, _, rest = line.partition(" ")
        assert len(rest.encode()) + 2 <= irc.LINE_LIMIT
        assert "msgid=" in tags
        got.append(irc.parse(line).params[1])
    assert len(got) >= 8
    # and the other way: a full 512-byte IRC line arrives whole
    long = "é" * 240  # as much as one line holds after "PRIVMSG #lobby :"
    watcher.say(f"PRIVMSG #lobby :{long}")
    alice.expect("message", nick="watcher", text=long)


def test_echo_message_and_ids_and_server_time(irc_server, opened):
    client = IrcClient(irc_server.irc_port, "ann", caps="echo-message server-time message-tags")
    opened.append(client)
    client.join("#lobby")
    client.say("PRIVMSG #lobby :echoed")
    line = client.expect(r"PRIVMSG #lobby :echoed")
    assert re.match(r"@time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z;msgid=\d+ :ann!ann@chatkit ",
                    line)
    plain = IrcClient(irc_server.irc_port, "bea")
    opened.append(plain)
    plain.join("#lobby")
    plain.say("PRIVMSG #lobby :not echoed", "PING :after")
    plain.expect("PONG")
    assert not any("not echoed" in line for line in plain.lines)


def test_chathistory_in_a_batch(irc_server, opened):
    alice = JsonClient(irc_server.port, "alice")
    opened.append(alice)
    ids = [alice.request({"type": "msg", "room": "lobby", "text": f"m{n}"})["id"]
           for n in range(5)]
    client = IrcClient(irc_server.irc_port, "hist",
                       caps="batch server-time message-tags draft/chathistory")
    opened.append(client)
    client.join("#lobby")  # with draft/chathistory nothing is replayed on join
    client.expect(r"BATCH -")  # (an empty batch)
    client.say(f"CHATHISTORY BEFORE #lobby msgid={ids[3]} 2")
    start = client.expect(r"BATCH \+\S+ chathistory #lobby")
    ref = start.split("BATCH +")[1].split()[0]
    first = client.expect(r"PRIVMSG #lobby :")
    second = client.expect(r"PRIVMSG #lobby :")
    client.expect(rf"BATCH -{ref}")
    assert first.startswith(f"@batch={ref};") and first.endswith(":m1")
    assert f"msgid={ids[2]}" in second and second.endswith(":m2")
    client.say("CHATHISTORY LATEST #lobby * 1")
    client.expect(r"BATCH \+")
    assert client.expect(r"PRIVMSG #lobby :").endswith(":m4")
    client.say(f"CHATHISTORY AFTER #lobby msgid={ids[3]} 10")
    client.expect(r"BATCH \+")
    assert client.expect(r"PRIVMSG #lobby :").endswith(":m4")
    client.expect(r"BATCH -")
    client.say("CHATHISTORY AROUND #lobby msgid=1 10")
    client.expect(r"FAIL CHATHISTORY UNKNOWN_COMMAND AROUND")
    client.say("CHATHISTORY LATEST #lobby junk=1 10")
    client.expect(r"FAIL CHATHISTORY INVALID_PARAMS")


def test_chathistory_by_timestamp(server_factory, opened, tmp_path):
    db = tmp_path / "m.db"
    store = MessageStore(db)
    day = 1_790_000_000.0  # messages a minute apart
    store.append([StoredMessage(n, "lobby", "message", "alice", None, f"t{n}", day + 60 * n)
                  for n in range(1, 2501)])  # more than one page of the log
    store.close()
    server = server_factory(irc_port=0, db=str(db))
    client = IrcClient(server.irc_port, "hist", caps="batch draft/chathistory server-time")
    opened.append(client)
    client.join("#lobby")
    client.expect(r"BATCH -")  # the join's batch: empty, the client asks for history itself

    def ask(line: str) -> list[str]:
        client.say(line)
        start = client.expect(r"BATCH \+\S+ chathistory #lobby")
        ref = start.split("BATCH +")[1].split()[0]
        texts = []
        while True:
            got = client.expect(rf"PRIVMSG #lobby :|BATCH -{ref}")
            if "BATCH -" in got:
                return texts
            texts.append(irc.parse(got).params[1])

    def stamp(n: int) -> str:
        return irc.server_time(day + 60 * n)

    assert ask(f"CHATHISTORY BEFORE #lobby timestamp={stamp(100)} 3") == ["t97", "t98", "t99"]
    assert ask(f"CHATHISTORY AFTER #lobby timestamp={stamp(100)} 2") == ["t101", "t102"]
    assert ask(f"CHATHISTORY LATEST #lobby timestamp={stamp(2498)} 10") == ["t2499", "t2500"]
    assert ask("CHATHISTORY BEFORE #lobby timestamp=2001-01-01T00:00:00.000Z 5") == []
    assert ask("CHATHISTORY AFTER #lobby timestamp=2090-01-01T00:00:00Z 5") == []


def test_the_server_password_is_pass(server_factory, opened):
    server = server_factory(irc_port=0, password="s3cret")
    good = IrcClient(server.irc_port, "good", password="s3cret")
    opened.append(good)
    bad = IrcClient(server.irc_port)
    opened.append(bad)
    bad.say("PASS wrong", "NICK bad", "USER u 0 * :u")
    bad.expect(r" 464 \* :Password incorrect")
    bad.expect(r"^ERROR :")
    assert bad.read_line(5) is None  # closed
    none = IrcClient(server.irc_port)
    opened.append(none)
    none.say("NICK nopass", "USER u 0 * :u")
    none.expect(r" 464 \* :Password incorrect: this server needs a password")


def test_irc_clients_are_throttled_never_dropped(server_factory, opened):
    server = server_factory(irc_port=0, rate_limit=50.0, rate_burst=5)
    watcher = JsonClient(server.port, "watcher")
    opened.append(watcher)
    fast = IrcClient(server.irc_port, "fast")
    opened.append(fast)
    fast.join("#lobby")
    started = time.monotonic()
    fast.say(*(f"PRIVMSG #lobby :line {n}" for n in range(40)))
    for n in range(40):
        watcher.expect("message", nick="fast", text=f"line {n}", timeout=10)
    assert time.monotonic() - started >= (40 - 5) / 50 * 0.8  # slowed down to the rate


def test_the_doors_share_the_connection_limits(server_factory, opened):
    server = server_factory(irc_port=0, max_clients=2)
    opened.append(JsonClient(server.port, "one"))
    opened.append(IrcClient(server.irc_port, "two"))
    third = IrcClient(server.irc_port)
    opened.append(third)
    third.expect(r"^ERROR :Closing link: server full")


def test_tls_port_refuses_plain_and_speaks_tls(server_factory, opened):
    server = server_factory(irc_tls_port=0)
    plain = IrcClient(server.irc_tls_port)
    opened.append(plain)
    plain.say("NICK x")
    plain.expect(r"^ERROR :Closing link: this port speaks TLS only")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", server.irc_tls_port), timeout=5)
    with context.wrap_socket(raw) as tls:
        tls.sendall(b"NICK sec\r\nUSER u 0 * :u\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while b" 001 sec " not in data and time.monotonic() < deadline:
            data += tls.recv(4096)
        assert b" 001 sec " in data


def test_away_whois_and_the_chatkit_side(irc_server, opened):
    ann = IrcClient(irc_server.irc_port, "ann")
    opened.append(ann)
    ann.join("#lobby")
    ann.say("AWAY :at lunch")
    ann.expect(" 306 ann ")
    bob = IrcClient(irc_server.irc_port, "bob")
    opened.append(bob)
    bob.say("WHOIS ann")
    bob.expect(r" 311 bob ann ann chatkit \* :ann")
    bob.expect(r" 319 bob ann :#lobby")
    bob.expect(r" 301 bob ann :at lunch")
    bob.expect(r" 318 bob ann ")
    bob.say("PRIVMSG ann :hello?")
    bob.expect(r" 301 bob ann :at lunch")
    ann.expect(r":bob!bob@chatkit PRIVMSG ann :hello\?")
    bob.say("LIST")
    bob.expect(r" 322 bob #lobby 1 :")
    bob.expect(r" 323 bob ")


def test_bench_measures_the_irc_door(server_factory):
    server = server_factory(irc_port=0, rate_limit=0, max_per_address=0)
    result = run_bench(BenchConfig(port=server.irc_port, target="irc", clients=5, senders=2,
                                   messages=20, duration=10, window=4))
    assert result.deliveries == result.expected_deliveries == 5 * 40
    assert (result.lost, result.duplicated, result.reordered, result.errors) == (0, 0, 0, 0)
    wait_for(lambda: not server.door.connections, message="bench clients gone")


def test_serve_flags_banner_and_discovery_advertise_the_irc_ports(tmp_path):
    proc = ServeProcess.start(["--no-discovery", "--irc-port", "0", "--irc-tls-port", "0"],
                              env_home=str(tmp_path / "home"))
    try:
        assert proc.proc.stdout is not None
        banner = [proc.proc.stdout.readline() for _ in range(4)]  # printed whole, at once
        plain = next(line for line in banner if "IRC clients: 127.0.0.1/" in line)
        port = int(re.search(r"127\.0\.0\.1/(\d+)", plain).group(1))  # type: ignore[union-attr]
        assert any("IRC clients over TLS: 127.0.0.1/" in line for line in banner)
        client = IrcClient(port, "fromcli")
        client.close()
    finally:
        assert proc.stop() == 0


def test_server_info_carries_the_irc_ports(server_factory):
    server = server_factory(irc_port=0, irc_tls_port=0)
    info = server.info()
    assert info["irc_port"] == server.irc_port and info["irc_tls_port"] == server.irc_tls_port
    assert "irc_port" not in server_factory().info()  # off: not said at all


def test_irc_tls_port_needs_tls(tmp_path):
    done = subprocess.run(chatkit_cmd("serve", "--host", "127.0.0.1", "--port", "0",
                                      "--no-discovery", "--no-tls", "--irc-tls-port", "0"),
                          capture_output=True, text=True, timeout=20,
                          env=cli_env(str(tmp_path / "home")))
    assert done.returncode != 0
    assert "--irc-tls-port and --no-tls cannot be combined" in done.stderr


def test_an_irc_port_in_use_names_the_flag(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(chatkit_cmd("serve", "--host", "127.0.0.1", "--port", "0",
                                          "--no-discovery", "--irc-port", str(port)),
                              capture_output=True, text=True, timeout=20,
                              env=cli_env(str(tmp_path / "home")))
    assert done.returncode != 0
    assert "choose another with --irc-port" in done.stderr


def test_a_crowd_on_irc_names_some_and_says_how_many(server_factory, opened):
    # crowd_size 3: a room of 4 or more is a crowd (the crowd rule, issue 14)
    server = server_factory(irc_port=0, crowd_size=3)
    for nick in ("ann", "ben", "cy", "dee"):
        opened.append(JsonClient(server.port, nick))
    watcher = IrcClient(server.irc_port, "watcher")
    opened.append(watcher)
    watcher.say("JOIN #lobby")
    names = watcher.expect(r" 353 watcher = #lobby :")
    assert len(names.split(" :", 1)[1].split()) == 3  # crowd_size names, itself among them
    watcher.expect(r" 366 watcher #lobby ")
    watcher.expect(r"NOTICE #lobby :5 people are in #lobby; the names above are some of them:"
                   r" /who #lobby lists them all")
    # arrivals come in the next presence summary, as JOIN lines
    opened.append(JsonClient(server.port, "eve"))
    watcher.expect(r":eve!eve@chatkit JOIN #lobby", timeout=8)
    watcher.say("WHO #lobby")  # the whole list, as /who gives it
    listed = {watcher.expect(r" 352 watcher #lobby ").split()[7] for _ in range(6)}
    assert listed == {"ann", "ben", "cy", "dee", "eve", "watcher"}
    watcher.expect(r" 315 watcher #lobby ")


def test_a_silent_irc_client_is_pinged_and_dropped_when_it_does_not_answer(server_factory,
                                                                            opened):
    server = server_factory(irc_port=0, ping_idle=0.3, ping_deadline=0.5)
    watcher = JsonClient(server.port, "watcher")
    opened.append(watcher)
    silent = IrcClient(server.irc_port, "silent")
    opened.append(silent)
    silent.join("#lobby")
    silent.expect(r"^PING :s1$")  # chatkit's ping, in IRC's words
    quit_ = watcher.expect("quit", nick="silent", timeout=5)
    assert "no answer to a ping" in quit_["reason"]


def test_away_notify_tells_the_others_who_asked(irc_server, opened):
    ann = IrcClient(irc_server.irc_port, "ann")
    opened.append(ann)
    ann.join("#lobby")
    told = IrcClient(irc_server.irc_port, "told", caps="away-notify")
    opened.append(told)
    told.join("#lobby")
    untold = IrcClient(irc_server.irc_port, "untold")
    opened.append(untold)
    untold.join("#lobby")
    ann.say("AWAY :back soon")
    told.expect(r"^:ann!ann@chatkit AWAY :back soon$")
    ann.say("AWAY")
    told.expect(r"^:ann!ann@chatkit AWAY$")
    untold.say("PING :sync")
    untold.expect("PONG")
    assert not any("@chatkit AWAY" in line for line in untold.lines)


def test_whois_of_someone_in_many_rooms_stays_within_512_bytes(server_factory, opened):
    server = server_factory(irc_port=0, max_rooms_per_client=25)
    busy = JsonClient(server.port, "busy")
    opened.append(busy)
    for n in range(25):
        busy.request({"type": "join", "room": f"room-with-a-long-name-{n:03d}"})
    asker = IrcClient(server.irc_port, "asker")
    opened.append(asker)
    asker.say("WHOIS busy", "ISON busy asker nobody")
    asker.expect(r" 318 asker busy ")
    listed = [line for line in asker.lines if " 319 " in line]
    assert len(listed) >= 2  # 25 names of 26 bytes do not fit in one
    assert all(len(line.encode()) + 2 <= irc.LINE_LIMIT for line in listed)
    assert sum(len(line.split(" :", 1)[1].split()) for line in listed) == 25  # lobby + 24
    asker.expect(r" 303 asker :busy asker$")


def test_a_stopping_server_says_so_to_irc_clients(server_factory, opened):
    server = server_factory(irc_port=0)
    client = IrcClient(server.irc_port, "leaving")
    opened.append(client)
    server.stop()
    client.expect(r"^ERROR :Closing link: server shutting down$")
    assert client.read_line() is None


def test_require_tls_also_closes_the_plain_irc_port_to_plaintext(server_factory, opened):
    server = server_factory(irc_port=0, require_tls=True)
    client = IrcClient(server.irc_port)
    opened.append(client)
    client.say("NICK plain")
    client.expect(r"^ERROR :Closing link: this port speaks TLS only")


def test_wrong_passwords_on_irc_lock_the_address_out_of_both_doors(server_factory, opened):
    # The same gate and the same budget as the line door's (5 wrong ones a minute).
    server = server_factory(irc_port=0, password="right")
    for attempt in range(5):
        guesser = IrcClient(server.irc_port)
        opened.append(guesser)
        guesser.say(f"PASS wrong{attempt}", f"NICK g{attempt}", "USER u 0 * :u")
        guesser.expect(r" 464 ")
    locked = IrcClient(server.irc_port)
    opened.append(locked)
    locked.expect(r"^ERROR :Closing link: too many wrong passwords from 127\.0\.0\.1")
    line_door = LineClient(server.port)
    opened.append(line_door)
    assert "too many wrong passwords" in line_door.read_until(lambda line: "!!!" in line)


def test_a_busy_irc_port_stops_the_whole_server_cleanly():
    from chatkit.errors import ChatkitError
    from chatkit.server import Server, ServerConfig

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = Server(ServerConfig(host="127.0.0.1", port=0, irc_port=busy.getsockname()[1],
                                     tls=False))
        with pytest.raises(ChatkitError) as exc:
            server.start()
    assert exc.value.remedy == "choose_irc_port"
    server.stop()  # nothing left running (the fixtures check for leaked threads)


def test_a_registered_nickname_is_refused_on_irc_with_the_reason(irc_server, opened):
    owner = JsonClient(irc_server.port, "owner")
    answer = owner.request({"type": "register", "password": "a long enough password"})
    assert answer["type"] == "account", answer
    owner.close()
    wait_for(lambda: "owner" not in irc_server.hub.nicks, message="owner gone")
    client = IrcClient(irc_server.irc_port)
    opened.append(client)
    client.say("NICK owner", "USER u 0 * :u")
    client.expect(r" 433 \* owner :Nickname is registered to an account")
    client.say("NICK guest")
    client.expect(" 001 guest ")
