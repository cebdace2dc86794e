"""Where discovery may speak, without sending anything: a server's scope for its bind address,
the targets a client probes, and the responder's rate limits and drop log.

Host names resolve through a stand-in resolver (localhost only), so no DNS query leaves."""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from typing import Any

import pytest

from chatkit import discovery as d
from chatkit.errors import ConfigError
from chatkit.net.interfaces import interfaces
from chatkit.ratelimit import KeyedLimiter

_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def local_resolver(monkeypatch) -> None:
    """`localhost` is 127.0.0.1 (and ::1); every other name is unknown."""
    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, *args: Any
                    ) -> list[Any]:
        if host == "localhost":
            host = "127.0.0.1"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return _real_getaddrinfo(host, port, family, type, *args)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# --------------------------------------------------------------------------- scope


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost", "[::1]"])
def test_loopback_bind_is_visible_on_loopback_only(host: str) -> None:
    scope = d.scope_for_bind(host)
    assert scope.kind == "loopback"
    assert scope.targets() == ["127.255.255.255"]
    assert scope.accepts("127.0.0.1") and scope.accepts("127.9.9.9")
    assert not scope.accepts("10.1.2.3") and not scope.accepts("192.0.2.7")


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "*"])
def test_wildcard_bind_covers_every_interface_that_is_up(host: str) -> None:
    scope = d.scope_for_bind(host)
    assert scope.kind == "all"
    expected = {i.broadcast for i in interfaces() if i.up and i.broadcast}
    assert set(scope.targets()) == expected | {"127.255.255.255"}
    assert scope.accepts("10.1.2.3")
    assert not scope.accepts("0.0.0.0") and not scope.accepts("255.255.255.255")
    assert not scope.accepts("224.0.0.1")


@pytest.mark.parametrize("host", ["2001:db8::1", "fe80::1", "no-such-host.invalid"])
def test_unreachable_bind_is_never_advertised(host: str) -> None:
    scope = d.scope_for_bind(host)
    assert scope.kind == "none" and scope.targets() == []
    # 1: any port; a responder with nowhere to speak opens no socket at all
    responder = d.DiscoveryResponder(bind_host=host, chat_port=1, discovery_port=1,
                                     info=lambda: {})
    responder.start()
    assert not responder.active and "off" in responder.describe()
    responder.stop()


def test_single_address_bind_covers_only_its_network() -> None:
    lan = [i for i in interfaces() if not i.loopback and i.broadcast]
    if not lan:
        pytest.skip("no non-loopback IPv4 interface to compute a scope for")
    iface = lan[0]
    scope = d.scope_for_bind(iface.address)
    assert scope.kind == "address"
    assert scope.targets() == [iface.broadcast]  # computed only, nothing is sent
    neighbour = str(next(h for h in iface.network.hosts() if str(h) != iface.address))
    assert scope.accepts(neighbour)
    assert scope.accepts("127.0.0.1")  # this host can always connect
    outside = "10.255.255.1" if not iface.network.overlaps(
        ipaddress.IPv4Network("10.0.0.0/8")) else "172.31.255.1"
    assert not scope.accepts(outside)


def test_ipv4_mapped_bind_is_treated_as_ipv4() -> None:
    assert d.scope_for_bind("::ffff:127.0.0.1").kind == "loopback"


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_probe_from_a_broadcast_source_is_not_answered(host: str) -> None:
    """A reply to a (forged) broadcast source would itself be a broadcast: such probes get no
    answer, whatever the scope. (Linux already drops most such packets as martians; other
    systems and settings may not.)"""
    scope = d.scope_for_bind(host)
    for interface in interfaces():
        if interface.broadcast:
            assert not scope.accepts(interface.broadcast), interface
    assert not scope.accepts(d.LOOPBACK_BROADCAST)
    assert not scope.accepts("255.255.255.255")


def test_resolve_targets(monkeypatch) -> None:
    assert d.resolve_targets(["127.255.255.255", " 127.255.255.255"]) == ["127.255.255.255"]
    assert d.resolve_targets(["localhost"]) == ["127.0.0.1"]
    with pytest.raises(ConfigError) as info:
        d.resolve_targets(["no-such-host.invalid"])
    assert isinstance(info.value, d.TargetError) and info.value.target == "no-such-host.invalid"
    assert "--" not in str(info.value)  # which flag to change is the CLI's to say
    monkeypatch.setenv(d.BROADCAST_ENV, "127.255.255.255 localhost")
    assert d.resolve_targets(None) == ["127.255.255.255", "127.0.0.1"]


# --------------------------------------------------------------------------- rate limiting


def test_reply_limits_per_source_burst_and_refill() -> None:
    now = [0.0]
    limiter = KeyedLimiter(rate=2.0, burst=4.0, global_rate=40.0, global_burst=80.0,
                           clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(6)] == [True] * 4 + [False] * 2
    assert limiter.allow("b")  # other sources are unaffected
    now[0] += 1.0
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]


def test_responder_limits_are_per_source_with_a_global_cap() -> None:
    limiter = d.reply_limiter()
    assert (limiter.rate, limiter.burst, limiter.max_keys) == (2.0, 8.0, 1024)
    # the per-source burst of 8, then silence; a flood from many sources stops at the cap
    assert sum(limiter.allow("10.0.0.1") for _ in range(20)) == 8
    assert sum(limiter.allow(f"10.1.{i // 256}.{i % 256}") for i in range(1000)) <= 90


def test_global_cap_holds_however_many_sources() -> None:
    now = [0.0]
    limiter = KeyedLimiter(rate=1.0, burst=1.0, global_rate=1.0, global_burst=10.0,
                           max_keys=50, clock=lambda: now[0])
    allowed = sum(limiter.allow(f"10.0.{i // 256}.{i % 256}") for i in range(1000))
    assert allowed == 10  # spoofing many sources does not multiply what we send


def test_memory_is_bounded_to_max_keys() -> None:
    """Exactly the `max_keys` sources heard last are remembered: each of them, having spent
    its only token, is still refused; the one heard just before them was forgotten, and so
    starts again with a full bucket."""
    now = [0.0]
    limiter = KeyedLimiter(rate=1.0, burst=1.0, global_rate=1e9, global_burst=1e9,
                           max_keys=50, clock=lambda: now[0])
    sources = [f"10.0.{i // 256}.{i % 256}" for i in range(1000)]
    assert all(limiter.allow(source) for source in sources)
    assert not any(limiter.allow(source) for source in sources[-50:])
    assert limiter.allow(sources[-51])


def test_full_table_evicts_the_stalest_source() -> None:
    """Spoofing `max_keys` addresses must not lock legitimate askers out."""
    now = [0.0]
    limiter = KeyedLimiter(rate=1.0, burst=2.0, global_rate=1e9, global_burst=1e9,
                           max_keys=50, clock=lambda: now[0])
    assert limiter.allow("192.0.2.1") and limiter.allow("192.0.2.1")  # a regular, heard first
    assert not limiter.allow("192.0.2.1")  # ... who has used up its burst
    for i in range(50):
        limiter.allow(f"10.0.0.{i}")  # the table fills with spoofed sources, no time passes
    assert limiter.allow("192.0.2.99")  # a newcomer still gets an answer
    assert limiter.allow("10.0.0.49") and not limiter.allow("10.0.0.49")  # limits still hold
    assert limiter.allow("192.0.2.1")  # the least recently heard made room: forgotten


def test_drop_log_counts_every_drop_from_several_threads() -> None:
    drops = d.DropLog(period=3600)
    drops.drop("first", "x")  # logs and resets; the rest is only counted
    threads, each = 4, 20_000
    start = threading.Barrier(threads)

    def hammer() -> None:
        start.wait()
        for _ in range(each):
            drops.drop("bad magic", "127.0.0.1")

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        workers = [threading.Thread(target=hammer) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(20)
    finally:
        sys.setswitchinterval(old)
    assert drops.counts == {"bad magic": threads * each}
