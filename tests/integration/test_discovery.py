"""Discovery on loopback: real UDP sockets, probes only ever to 127.255.255.255 or 127.0.0.1.

Every responder here is bound to 127.0.0.1 (so it announces to 127.255.255.255 only) and every
test uses its own free discovery port, so nothing leaves this machine and tests don't interfere.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from chatkit import discovery as d
from chatkit.cli import cli
from chatkit.cli.discover import run_discover
from chatkit.cli.discover_output import diagnose_to_dict, format_diagnose, format_table
from chatkit.discovery import scope
from chatkit.errors import ExitCode
from chatkit.net.interfaces import Interface, interfaces
from chatkit.ratelimit import KeyedLimiter

from helpers import JsonClient, free_udp_port, wait_for

LOOPBACK = ["127.255.255.255"]
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def port() -> int:
    return free_udp_port()


def server_info(name: str = "alpha", **overrides: Any) -> dict[str, Any]:
    info = {"name": name, "instance": secrets.token_hex(8), "port": 4000,
            "addresses": ["127.0.0.1"], "version": 1, "tls": False, "fingerprint": None,
            "users": 2, "rooms": 1}
    info.update(overrides)
    return info


@pytest.fixture
def responders(port: int) -> Iterator[Callable[..., d.DiscoveryResponder]]:
    """Start responders bound to 127.0.0.1 on the test's port; all stopped at teardown."""
    started: list[d.DiscoveryResponder] = []

    def start(name: str = "alpha", interval: float = 30.0, **info: Any) -> d.DiscoveryResponder:
        data = server_info(name, **info)
        responder = d.DiscoveryResponder(bind_host="127.0.0.1", chat_port=data["port"],
                                         discovery_port=port, info=lambda: data,
                                         announce_interval=interval)
        responder.start()
        assert responder.active, responder.describe()
        started.append(responder)
        return responder

    yield start
    for responder in started:
        responder.stop()


def probe_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def collect(sock: socket.socket, seconds: float) -> list[bytes]:
    """Every datagram arriving on `sock` within `seconds`."""
    got: list[bytes] = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            got.append(sock.recv(65536))
        except TimeoutError:
            break
    return got


def probe_once(sock: socket.socket, port: int, *, size: int = d.PROBE_SIZE,
               target: str = "127.0.0.1") -> list[bytes]:
    nonce = secrets.token_hex(16)
    sock.sendto(d.encode_datagram({"type": "probe", "nonce": nonce}, pad_to=size),
                (target, port))
    return [r for r in collect(sock, 0.5) if nonce.encode() in r]


# --------------------------------------------------------------------------- rate limits


def test_responder_answers_a_new_source_when_its_table_is_full(port: int) -> None:
    responder = d.DiscoveryResponder(bind_host="127.0.0.1", chat_port=4000,
                                     discovery_port=port, info=server_info)
    # The global cap is tested above; lifted here so that only the full table is in the way.
    responder.limiter = KeyedLimiter(rate=d.responder.REPLY_RATE, burst=d.responder.REPLY_BURST,
                                     global_rate=1e6, global_burst=1e6)
    # Filled before the thread starts, so only this thread touches the limiter.
    for i in range(responder.limiter.max_keys):
        responder.limiter.allow(f"127.1.{i // 256}.{i % 256}")
    responder.start()
    try:
        with probe_socket() as sock:
            assert len(probe_once(sock, port)) == 1
    finally:
        responder.stop()


# --------------------------------------------------------------------------- responder + discover


def test_several_servers_on_one_host_all_answer(responders, port: int) -> None:
    a = responders("alpha", port=4001)
    b = responders("beta", port=4002, users=5)
    found = d.discover(timeout=0.6, broadcast=LOOPBACK, discovery_port=port)
    assert [(s.name, s.port, s.users) for s in found] == [("alpha", 4001, 2), ("beta", 4002, 5)]
    for server in found:
        assert server.host == "127.0.0.1"
        assert server.rtt is not None and 0 <= server.rtt < 0.6
    assert {s.instance for s in found} == {a.info()["instance"], b.info()["instance"]}


def test_one_row_per_instance_even_when_it_answers_several_probes(responders,
                                                                   port: int) -> None:
    responders("alpha")
    # the broadcast and the unicast probe both reach it; it answers both, three times each
    found = d.discover(timeout=0.6, broadcast=["127.255.255.255", "127.0.0.1"],
                       discovery_port=port)
    assert len(found) == 1
    assert format_table(found).count("alpha") == 1


def test_responder_reads_info_and_interfaces_once_per_burst(port: int, monkeypatch) -> None:
    """A burst of probes must not enumerate interfaces (which a server's info() does too) per
    datagram; a change still shows within about CACHE_SECONDS."""
    enumerations = [0]
    real_interfaces = interfaces

    def counting_interfaces() -> list[Interface]:
        enumerations[0] += 1
        # Loopback only: a responder bound to 0.0.0.0 announces on every interface it is
        # told about, and a test must never broadcast on a real one.
        return [i for i in real_interfaces() if i.loopback]

    monkeypatch.setattr(scope, "interfaces", counting_interfaces)
    scope.clear_interface_cache()
    calls = [0]
    users = [2]

    def info() -> dict[str, Any]:
        calls[0] += 1
        scope.interfaces()  # as the real server's info() does (its addresses)
        return server_info(users=users[0], instance="burst")

    # bound to every interface: the scope that consults the interface list for each probe
    responder = d.DiscoveryResponder(bind_host="0.0.0.0", chat_port=4000, discovery_port=port,
                                     info=info)
    responder.start()
    try:
        assert responder.active, responder.describe()
        with probe_socket() as sock:
            nonce = secrets.token_hex(16)
            for _ in range(8):  # the per-source burst
                sock.sendto(d.make_probe(nonce), ("127.0.0.1", port))
            replies = [r for r in collect(sock, 0.5) if nonce.encode() in r]
            assert len(replies) == 8
            # the start announcement plus at most one refresh, not one per reply
            assert calls[0] <= 2 and enumerations[0] <= 6, (calls, enumerations)

            users[0] = 7

            def fresh() -> bool:
                return any(d.decode_datagram(r)["users"] == 7 for r in probe_once(sock, port))

            started = time.monotonic()
            wait_for(fresh, timeout=5, message="the new user count in a reply")
            assert time.monotonic() - started < d.CACHE_SECONDS + 2
    finally:
        responder.stop()
        scope.clear_interface_cache()  # later tests must see the real interfaces


def test_nothing_found(port: int) -> None:
    assert d.discover(timeout=0.3, broadcast=LOOPBACK, discovery_port=port) == []


def test_real_server_is_found_and_reachable(server_factory, port: int) -> None:
    server = server_factory(discovery=True, discovery_port=port, name="office")
    found = d.discover(timeout=0.6, broadcast=LOOPBACK, discovery_port=port)
    assert len(found) == 1
    assert (found[0].name, found[0].port, found[0].instance) == (
        "office", server.port, server.instance)
    assert found[0].host == "127.0.0.1"
    client = JsonClient(found[0].port, nick="dora")
    try:
        assert client.welcome is not None
        wait_for(lambda: d.discover(timeout=0.3, broadcast=LOOPBACK,
                                    discovery_port=port)[0].users == 1, message="user count")
    finally:
        client.close()
    server.stop()
    assert d.discover(timeout=0.3, broadcast=LOOPBACK, discovery_port=port) == []


# --------------------------------------------------------------------------- hostile network


HOSTILE = [
    b"",
    b"\x00" * 50,
    os.urandom(1024),
    b"x" * 9000,  # oversized
    b"CHATKIT-DISCOVERY 2\n" + b'{"type":"probe","nonce":"' + b"a" * 32 + b'"}' + b" " * 1000,
    b"CHATKIT-DISCOVERY 1\n" + b"{" * 1100,
    b"CHATKIT-DISCOVERY 1\n" + b'{"type":"probe","nonce":["x"]}' + b" " * 1000,
    b"CHATKIT-DISCOVERY 1\n" + b'{"type":"probe","nonce":"' + b"Z" * 32 + b'"}' + b" " * 1000,
    b"CHATKIT-DISCOVERY 1\n" + b'{"type":"reply","nonce":"' + b"a" * 32 + b'"}' + b" " * 1000,
    b"CHATKIT-DISCOVERY 1\n" + b'{"type":"announce","event":"stop"}',
]


def test_responder_ignores_hostile_datagrams(responders, port: int, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="chatkit.discovery")
    responder = responders("alpha")
    with probe_socket() as sock:
        for _ in range(20):
            for data in HOSTILE:
                sock.sendto(data, ("127.0.0.1", port))
        assert collect(sock, 0.3) == []  # no answer to any of them
        assert len(probe_once(sock, port)) == 1  # and still answering good probes
    assert responder.active
    records = [r for r in caplog.records if r.name == "chatkit.discovery"]
    assert len(records) <= 2, [r.getMessage() for r in records]  # no log flood


def test_short_probes_get_no_answer(responders, port: int) -> None:
    responders("alpha")
    with probe_socket() as sock:
        assert probe_once(sock, port, size=0) == []
        assert probe_once(sock, port, size=d.PROBE_SIZE - 1) == []
        assert len(probe_once(sock, port, size=d.PROBE_SIZE)) == 1


def test_reply_is_never_larger_than_the_probe(responders, port: int) -> None:
    responders("n" * 64, addresses=["fd00::1234:5678:9abc:def0"] * 16,
               fingerprint="ab:" * 40 + "ab")
    with probe_socket() as sock:
        for size in (d.PROBE_SIZE, 1100, d.MAX_DATAGRAM):
            (reply,) = probe_once(sock, port, size=size)
            assert len(reply) <= size


def test_replies_are_rate_limited_per_source(responders, port: int) -> None:
    responders("alpha")
    with probe_socket() as sock:
        probe = d.make_probe("cd" * 16)
        start = time.monotonic()
        for _ in range(60):
            sock.sendto(probe, ("127.0.0.1", port))
        replies = collect(sock, 0.5)
        elapsed = time.monotonic() - start
    assert 1 <= len(replies) <= 8 + 2 * elapsed + 1


def test_loopback_server_ignores_probes_from_other_networks(responders, port: int) -> None:
    lan = [i for i in interfaces() if not i.loopback]
    if not lan:
        pytest.skip("no non-loopback local address to send from")
    responders("alpha")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # a local non-loopback source address, to loopback's 127.0.0.1: never leaves the host
        sock.bind((lan[0].address, 0))
        assert probe_once(sock, port) == []


def test_privileged_source_ports_get_no_answer(responders, port: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to send from a port below 1024")
    responders("alpha")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", 1000 + secrets.randbelow(23)))
        except OSError as exc:
            pytest.skip(f"cannot bind a privileged port: {exc}")
        assert probe_once(sock, port) == []


def test_port_held_without_sharing_leaves_server_running(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hog:
        hog.bind(("0.0.0.0", port))
        responder = d.DiscoveryResponder(bind_host="127.0.0.1", chat_port=1,
                                         discovery_port=port, info=server_info)
        responder.start()  # must not raise
        assert not responder.active and "off" in responder.describe()
        responder.stop()


def test_client_ignores_spoofed_and_malformed_replies(port: int) -> None:
    """A fake server answers the probe with junk first, then one valid reply."""
    fake = d.udp_socket(port, shared=True)
    fake.settimeout(5)
    result: list[list[d.ServerFound]] = []
    thread = threading.Thread(target=lambda: result.append(
        d.discover(timeout=1.0, broadcast=LOOPBACK, discovery_port=port, attempts=1)))
    thread.start()
    try:
        data, source = fake.recvfrom(2048)
        nonce = d.decode_datagram(data)["nonce"]
        good = server_info("\x1b[31mevil\x07", instance="fake1")
        junk = [
            d.encode_datagram({"type": "reply", "nonce": "00" * 16, **server_info("spoof")}),
            d.encode_datagram({"type": "reply", **server_info("no-nonce")}),
            d.encode_datagram({"type": "reply", "nonce": nonce, **server_info("bad", port=0)}),
            d.encode_datagram({"type": "announce", "nonce": nonce, **server_info("ann")}),
            d.encode_datagram({"type": "probe", "nonce": nonce}),
            b"CHATKIT-DISCOVERY 9\n" + json.dumps({"type": "reply", "nonce": nonce,
                                                   **server_info("v9")}).encode(),
            b"x" * 5000,
            os.urandom(600),
        ]
        for datagram in [*junk, d.encode_datagram({"type": "reply", "nonce": nonce, **good})]:
            fake.sendto(datagram, source)
    finally:
        thread.join(10)
        fake.close()
    (found,) = result
    assert [(s.name, s.instance) for s in found] == [("evil", "fake1")]


# --------------------------------------------------------------------------- watch


class Watcher:
    """Runs `watch` in a thread; events land in a queue."""

    def __init__(self, port: int, **kwargs: Any) -> None:
        self.events: queue.Queue[d.WatchEvent] = queue.Queue()
        self.stop = threading.Event()
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(port, kwargs))
        self.thread.start()

    def _run(self, port: int, kwargs: dict[str, Any]) -> None:
        try:
            for event in d.watch(broadcast=LOOPBACK, discovery_port=port, stop=self.stop,
                                 duration=25, **kwargs):
                self.events.put(event)
        except BaseException as exc:  # surfaced by the test
            self.error.append(exc)

    def expect(self, kind: str, reason: str | None = None, timeout: float = 5.0
               ) -> d.WatchEvent:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind} event within {timeout}s") from None
            if event.kind == kind and (reason is None or event.reason == reason):
                return event

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.error, self.error


@pytest.fixture
def watcher(port: int) -> Iterator[Callable[..., Watcher]]:
    made: list[Watcher] = []

    def make(**kwargs: Any) -> Watcher:
        made.append(Watcher(port, **kwargs))
        return made[-1]

    yield make
    for w in made:
        w.close()


def test_watch_sees_servers_come_and_go(responders, watcher, port: int) -> None:
    responders("early")  # already running: found by the watcher's first probe
    w = watcher(probe_interval=60)
    assert w.expect("appear").server.name == "early"
    late = responders("late", interval=0.2)  # started later: heard from its announcement
    event = w.expect("appear")
    assert (event.server.name, event.reason) == ("late", "announce")
    late.stop()
    assert w.expect("leave", "stopped").server.name == "late"


def test_watch_forgets_a_silent_server_and_notices_a_restart(watcher, port: int) -> None:
    w = watcher(probe_interval=60, missed=3)
    with probe_socket() as sock:
        first = server_info("crashy", instance="one", interval=0.1)

        def announce(info: dict[str, Any]) -> None:
            sock.sendto(d.encode_datagram({"type": "announce", "event": "alive", **info}),
                        ("127.255.255.255", port))

        deadline = time.monotonic() + 5
        while w.events.empty() and time.monotonic() < deadline:
            announce(first)
            w.stop.wait(0.05)
        assert w.expect("appear").server.instance == "one"
        # silence: forgotten after about 3 missed 0.1 s intervals
        started = time.monotonic()
        assert w.expect("leave", "silent", timeout=3).server.instance == "one"
        assert time.monotonic() - started < 2

        announce(first)
        assert w.expect("appear").server.instance == "one"
        announce(server_info("crashy", instance="two"))  # same address and port: a restart
        assert w.expect("leave", "replaced").server.instance == "one"
        assert w.expect("appear").server.instance == "two"


def test_watch_ignores_hostile_datagrams(watcher, port: int) -> None:
    w = watcher(probe_interval=60)
    good = d.encode_datagram({"type": "announce", "event": "alive",
                              **server_info("ok", instance="good")})
    with probe_socket() as sock:
        deadline = time.monotonic() + 5
        while w.events.empty() and time.monotonic() < deadline:  # until the watcher listens
            for data in [*HOSTILE, good]:
                sock.sendto(data, ("127.255.255.255", port))
            w.stop.wait(0.05)
    assert w.expect("appear").server.instance == "good"
    assert w.events.empty()


# --------------------------------------------------------------------------- diagnose, run_discover


def test_diagnose_with_a_server(responders, port: int) -> None:
    responders("alpha")
    report = d.diagnose(timeout=0.5, broadcast=LOOPBACK, discovery_port=port)
    assert report.ok and report.listening
    (check,) = report.targets
    assert (check.target, check.interface, check.error, check.echoed) == (
        "127.255.255.255", "lo", None, True)
    assert len(check.servers) == 1
    text = format_diagnose(report)
    assert "own probe came back" in text and "alpha" in text
    json.dumps(diagnose_to_dict(report))


def test_diagnose_with_nothing_explains_and_offers_the_fallback(port: int) -> None:
    report = d.diagnose(timeout=0.3, broadcast=LOOPBACK, discovery_port=port)
    assert not report.ok
    assert report.targets[0].echoed is True  # our broadcast did come back
    text = format_diagnose(report)
    for hint in ("firewall", "Wi-Fi client isolation", "VPN", "containers", "chatkit join"):
        assert hint in text


def test_diagnose_never_blames_a_firewall_for_a_unicast_echo(port: int) -> None:
    """A unicast probe to this host reaches one of the sockets sharing the port (SO_REUSEPORT),
    maybe another listener's rather than ours: its echo missing says nothing."""
    others = [d.udp_socket(port, shared=True) for _ in range(15)]  # e.g. `discover --watch`es
    try:
        report = d.diagnose(timeout=0.3, broadcast=["127.0.0.1", "127.255.255.255"],
                            discovery_port=port)
    finally:
        for sock in others:
            sock.close()
    unicast, broadcast = report.targets
    assert unicast.target == "127.0.0.1" and unicast.echoed in (True, None)
    assert broadcast.echoed is True  # a broadcast reaches every socket sharing the port
    assert not any(cause.kind == "echo_missing" for cause in report.causes), report.causes
    text = format_diagnose(report)
    assert "local firewall" not in text and "NOT heard" not in text


def test_run_discover_exit_statuses_and_json(responders, port: int) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = run_discover(timeout=0.3, broadcast=LOOPBACK, discovery_port=port, out=out,
                            err=err)
    assert status == ExitCode.NOT_FOUND == 6
    assert "--diagnose" in err.getvalue() and "chatkit join" in err.getvalue()
    responders("alpha")
    out = io.StringIO()
    status = run_discover(timeout=0.3, json_output=True, broadcast=LOOPBACK,
                            discovery_port=port, out=out, err=err)
    assert status == 0
    (server,) = json.loads(out.getvalue())["servers"]
    assert server["name"] == "alpha" and server["address"] == "127.0.0.1:4000"
    assert server["tls"] is False and server["rtt_ms"] >= 0


def test_run_discover_watch_json_lines(responders, port: int) -> None:
    responders("alpha")
    out = io.StringIO()
    status = run_discover(watch_mode=True, json_output=True, broadcast=LOOPBACK,
                            discovery_port=port, out=out, err=io.StringIO(), duration=0.5)
    assert status == 0
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["event"] == "appear"


# --------------------------------------------------------------------------- CLI


def test_cli_discover(responders, port: int) -> None:
    runner = CliRunner()
    args = ["discover", "--broadcast", "127.255.255.255", "--discovery-port", str(port),
            "--timeout", "0.3"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 6, result.output
    responders("alpha")
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "alpha" in result.output and "127.0.0.1:4000" in result.output
    result = runner.invoke(cli, [*args, "--json"])
    assert json.loads(result.output)["servers"][0]["name"] == "alpha"


def test_cli_discover_rejects_watch_with_diagnose(port: int) -> None:
    result = CliRunner().invoke(cli, ["discover", "--watch", "--diagnose", "--broadcast",
                                      "127.255.255.255", "--discovery-port", str(port)])
    assert result.exit_code == 2
