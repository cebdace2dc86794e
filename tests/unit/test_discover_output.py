"""How `chatkit discover` renders discovery's data, without sockets: the self-test report (its
text and JSON must read exactly as they always have), the likely causes, watch lines, tables,
and the flag each discovery error points to."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from chatkit import discovery as d
from chatkit.cli import cli
from chatkit.cli import discover_output as o
from chatkit.cli.options import discovery_hints
from chatkit.errors import ConfigError, NotFoundError
from chatkit.net.interfaces import Interface

LO = Interface("lo", "127.0.0.1", 8, True)
ETH = Interface("eth0", "10.0.0.5", 24, True)
WLAN = Interface("wlan0", "192.168.1.7", 24, False)


def server(name: str = "office", host: str = "10.0.0.5", rtt: float | None = 0.0012,
           users: int = 3, rooms: int = 2, instance: str = "i1") -> d.ServerFound:
    return d.ServerFound(name=name, instance=instance, host=host, port=12345,
                         addresses=[host], version=1, tls=True, fingerprint="SHA256:ab",
                         users=users, rooms=rooms, rtt=rtt, via=[host])


def report(interfaces: list[Interface], targets: list[d.TargetCheck],
           servers: list[d.ServerFound], listen_error: str | None = None) -> d.DiagnoseReport:
    made = d.DiagnoseReport(discovery_port=12345, timeout=2.0, interfaces=interfaces,
                            targets=targets, listening=listen_error is None,
                            listen_error=listen_error, servers=servers, causes=[])
    made.causes = d.likely_causes(made)
    return made


def nothing_answered() -> d.DiagnoseReport:
    return report([LO, ETH, WLAN], [
        d.TargetCheck("10.0.0.255", "eth0", "10.0.0.5", "10.0.0.0/24", "Network is unreachable",
                      None),
        d.TargetCheck("127.255.255.255", "lo", "127.0.0.1", "127.0.0.0/8", None, False),
        d.TargetCheck("192.0.2.255", None, None, None, None, None),
    ], [], listen_error="Address already in use")


def loopback_only() -> d.DiagnoseReport:
    return report([LO, ETH], [
        d.TargetCheck("10.0.0.255", "eth0", "10.0.0.5", "10.0.0.0/24", None, True, ["i1"]),
        d.TargetCheck("127.255.255.255", "lo", "127.0.0.1", "127.0.0.0/8", None, True,
                      ["i1", "i2"]),
    ], [server(host="127.0.0.1"),
        server("lab", host="127.0.0.1", rtt=None, users=1, rooms=1, instance="i2")])


# What the self-test printed before discovery became a package, line for line.
NOTHING_ANSWERED = [
    'Discovery self-test (UDP port 12345, 2 s)',
    '',
    'Interfaces:',
    '  lo           127.0.0.1/8   up   broadcast 127.255.255.255',
    '  eth0         10.0.0.5/24  up   broadcast 10.0.0.255',
    '  wlan0        192.168.1.7/24  DOWN broadcast 192.168.1.255',
    '  (could not listen on UDP 12345: Address already in use; echo test skipped)',
    '',
    'Probes:',
    '  10.0.0.255       via eth0: send FAILED: Network is unreachable',
    '  127.255.255.255  via lo: sent, own probe NOT heard; no answer',
    '  192.0.2.255     : sent, echo n/a; no answer',
    '',
    'No server answered.',
    '',
    'Likely causes:',
    '  - interface wlan0 (192.168.1.7) is down and was not probed',
    '  - could not send to 10.0.0.255: Network is unreachable (interface down, no route, or'
    ' sending broadcasts is blocked)',
    '  - our own probe to 127.255.255.255 did not come back: a local firewall is probably'
    ' dropping UDP port 12345 (check ufw/firewalld/iptables, or Windows Defender Firewall /'
    ' macOS firewall)',
    '  - could not listen on UDP port 12345 (Address already in use), so the echo test was'
    ' skipped; another program may hold the port',
    '  - no server is running with discovery on (a server started with `--no-discovery` stays'
    ' silent), or it uses another discovery port than 12345 (`--discovery-port`)',
    "  - the server's firewall drops incoming UDP port 12345 (the chat port is TCP and may"
    ' still work)',
    '  - Wi-Fi client isolation (guest, hotel, café and some office networks) blocks traffic'
    ' between devices: use a network without it, or a wired connection',
    '  - a VPN is capturing your traffic or puts you on another subnet: disconnect it or'
    ' allow local network access',
    '  - containers and VMs (Docker bridge, WSL2, VirtualBox NAT) sit on their own private'
    ' network; broadcasts do not cross it: use host networking or a bridged adapter',
    '  - the server is on another subnet or VLAN: broadcasts do not cross routers; try'
    " `--broadcast` with that subnet's broadcast address, or the server's own address",
    '',
    "Fallback: ask for the server's address (its `chatkit serve` banner shows it) and run"
    ' `chatkit join HOST[:PORT]`.',
]

LOOPBACK_ONLY = [
    'Discovery self-test (UDP port 12345, 2 s)',
    '',
    'Interfaces:',
    '  lo           127.0.0.1/8   up   broadcast 127.255.255.255',
    '  eth0         10.0.0.5/24  up   broadcast 10.0.0.255',
    '',
    'Probes:',
    '  10.0.0.255       via eth0: sent, own probe came back; office',
    '  127.255.255.255  via lo: sent, own probe came back; office, lab',
    '',
    'Servers found:',
    'NAME    ADDRESS          USERS  ROOMS  TLS  PASSWORD     RTT',
    'office  127.0.0.1:12345      3      2  yes  ?         1.2 ms',
    'lab     127.0.0.1:12345      1      1  yes  ?              -',
    '',
    'Notes:',
    '  - servers answered only on this machine: a server started with `--host 127.0.0.1` is'
    ' invisible to other machines; use `chatkit serve --host 0.0.0.0`',
]


def test_diagnose_text_when_nothing_answered() -> None:
    assert o.format_diagnose(nothing_answered()).split("\n") == NOTHING_ANSWERED


def test_diagnose_text_when_servers_answered_on_loopback_only() -> None:
    assert o.format_diagnose(loopback_only()).split("\n") == LOOPBACK_ONLY


def test_likely_causes_are_data_most_specific_first() -> None:
    kinds = [c.kind for c in nothing_answered().causes]
    assert kinds == ["interface_down", "send_failed", "echo_missing", "cannot_listen",
                     "no_server", "server_firewall", "client_isolation", "vpn",
                     "virtual_network", "other_subnet"]
    assert [c.kind for c in loopback_only().causes] == ["loopback_only"]
    alone = report([LO, WLAN], [d.TargetCheck("127.255.255.255", "lo", "127.0.0.1",
                                              "127.0.0.0/8", None, True)], [])
    assert [c.kind for c in alone.causes][:2] == ["no_network", "interface_down"]
    assert "connect to the network" in o.format_diagnose(alone)


def test_diagnose_json_keeps_its_shape() -> None:
    data = json.loads(json.dumps(o.diagnose_to_dict(nothing_answered())))
    assert list(data) == ["discovery_port", "timeout", "interfaces", "targets", "listening",
                          "listen_error", "servers", "causes", "fallback"]
    assert data["targets"][0] == {
        "target": "10.0.0.255", "interface": "eth0", "address": "10.0.0.5",
        "network": "10.0.0.0/24", "error": "Network is unreachable", "echoed": None,
        "servers": []}
    assert data["causes"] == [line[4:] for line in NOTHING_ANSWERED if line.startswith("  - ")]
    assert data["fallback"] == o.FALLBACK and "chatkit join HOST[:PORT]" in o.FALLBACK
    loopback = o.diagnose_to_dict(loopback_only())
    assert [s["name"] for s in loopback["servers"]] == ["office", "lab"]


def test_table_format() -> None:
    server = d.ServerFound(name="office", instance="i", host="10.0.0.5", port=12345,
                           addresses=[], version=1, tls=True, fingerprint="ab", users=3,
                           rooms=2, rtt=0.0012)
    lines = o.format_table([server]).splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "USERS", "ROOMS", "TLS", "PASSWORD", "RTT"]
    assert lines[1].split() == ["office", "10.0.0.5:12345", "3", "2", "yes", "?", "1.2", "ms"]


def test_table_and_json_say_which_servers_need_a_password() -> None:
    servers = [d.ServerFound(name=name, instance=name, host="10.0.0.5", port=port,
                             addresses=[], version=1, tls=True, fingerprint=None, users=1,
                             rooms=1, rtt=None, password=password)
               for name, port, password in (("locked", 1, True), ("open", 2, False),
                                            ("old", 3, None))]
    rows = [line.split() for line in o.format_table(servers).splitlines()[1:]]
    assert [(row[0], row[5]) for row in rows] == [("locked", "yes"), ("open", "no"),
                                                  ("old", "?")]
    listed = json.loads(o.format_json(servers))["servers"]
    assert [s["password"] for s in listed] == [True, False, None]


@pytest.mark.parametrize("kind, reason, users, detail", [
    ("appear", "probe", 3, "+ office  10.0.0.5:12345  (3 users, 2 rooms)"),
    ("update", "changed", 1, "~ office  10.0.0.5:12345  (1 user, 1 room)"),
    ("leave", "stopped", 3, "- office  10.0.0.5:12345  (stopped)"),
    ("leave", "silent", 3, "- office  10.0.0.5:12345  (no longer heard)"),
    ("leave", "replaced", 3, "- office  10.0.0.5:12345  (restarted)"),
])
def test_watch_lines(monkeypatch, kind, reason: str, users: int, detail: str) -> None:
    monkeypatch.setattr(o.time, "strftime", lambda fmt: "12:34:56")
    rooms = 1 if users == 1 else 2
    event = d.WatchEvent(kind, server(users=users, rooms=rooms), reason)
    assert o.format_event(event) == f"12:34:56 {detail}"
    assert json.loads(json.dumps(event.to_dict()))["server"]["rtt_ms"] == 1.2


def test_errors_get_the_flag_that_fixes_them() -> None:
    with pytest.raises(ConfigError) as bad:
        with discovery_hints():
            raise d.TargetError("nowhere.invalid")
    assert str(bad.value) == "--broadcast 'nowhere.invalid' is not an IPv4 address or known host"
    with pytest.raises(NotFoundError) as missing:
        with discovery_hints():
            raise NotFoundError("no chatkit server answered on this network")
    assert str(missing.value) == (
        "no chatkit server answered on this network; run `chatkit discover --diagnose` to see "
        "why, or ask for the server's address and use `chatkit join HOST[:PORT]`")


@pytest.mark.parametrize("args", [
    ["discover"], ["discover", "--diagnose"], ["send", "--nick", "bot", "hi"],
])
def test_cli_names_the_flag_for_a_bad_broadcast_target(monkeypatch, args: list[str]) -> None:
    """The target is resolved before any socket is opened; the resolver here knows nothing."""
    def unknown(*_args: object, **_kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    result = CliRunner().invoke(cli, [*args, "--broadcast", "nowhere.invalid"])
    assert result.exit_code == 2, result.output
    assert "--broadcast 'nowhere.invalid' is not an IPv4 address or known host" in result.output
