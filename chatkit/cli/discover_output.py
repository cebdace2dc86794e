"""How discovery results look on a terminal and in JSON: server tables, watch lines, the
self-test report and the words for each likely cause. Pure functions of discovery's data; the
only place that spells out which command or flag fixes a discovery problem."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only types: `chatkit --help` need not load discovery
    from chatkit.discovery import Cause, DiagnoseReport, ServerFound, WatchEvent

NOTHING_FOUND_HINT = (
    "run `chatkit discover --diagnose` to see why, or ask for the server's address and use "
    "`chatkit join HOST[:PORT]`"
)
FALLBACK = ("ask for the server's address (its `chatkit serve` banner shows it) and run "
            "`chatkit join HOST[:PORT]`")


def format_rtt(rtt: float | None) -> str:
    if rtt is None:
        return "-"
    return f"{rtt * 1000:.1f} ms"


def password_cell(password: bool | None) -> str:
    return "?" if password is None else "yes" if password else "no"


def irc_cell(server: ServerFound) -> str:
    """The IRC door's ports: `6667`, `6697 (TLS)`, both, or `-`."""
    ports = [str(server.irc_port)] if server.irc_port else []
    if server.irc_tls_port:
        ports.append(f"{server.irc_tls_port} (TLS)")
    return ", ".join(ports) or "-"


def format_table(servers: list[ServerFound]) -> str:
    """A plain-text table: name, address:port, users, rooms, TLS, password (? for a server
    too old to say), round-trip time. The nodes of a cluster (`serve --cluster`) come after
    the other servers, under one heading per cluster (its name, nodes and users in all),
    indented."""
    alone = [s for s in servers if not s.cluster]
    clusters: dict[str, list[ServerFound]] = {}
    for s in servers:
        if s.cluster:
            clusters.setdefault(s.cluster.casefold(), []).append(s)
    ordered = alone + [s for key in sorted(clusters) for s in clusters[key]]
    rows: list[tuple[str, ...]] = [("NAME", "ADDRESS", "USERS", "ROOMS", "TLS", "PASSWORD",
                                    "RTT")]
    for s in ordered:
        name = s.name if not s.cluster else f"  {s.name}" + (
            f" ({s.node})" if s.node and s.node != s.name else "")
        rows.append((name, s.address, str(s.users), str(s.rooms), "yes" if s.tls else "no",
                     password_cell(s.password), format_rtt(s.rtt)))
    if any(s.irc_port or s.irc_tls_port for s in servers):  # a column only when it says more
        rows = [(*rows[0], "IRC"), *((*row, irc_cell(s)) for row, s in
                                      zip(rows[1:], ordered, strict=True))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 3, 6}
    lines = []
    previous = ""
    for index, row in enumerate(rows):
        cluster = (ordered[index - 1].cluster or "") if index else ""
        if cluster and cluster.casefold() != previous:
            previous = cluster.casefold()
            nodes = clusters[previous]
            users = sum(n.users for n in nodes)
            lines.append(f"cluster {cluster}: {len(nodes)} node"
                         f"{'s' if len(nodes) != 1 else ''}, {users} user"
                         f"{'s' if users != 1 else ''}")
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_json(servers: list[ServerFound]) -> str:
    return json.dumps({"servers": [s.to_dict() for s in servers]}, ensure_ascii=False, indent=2)


def format_event(event: WatchEvent) -> str:
    """One line per watch event: time, + ~ -, name, address and what happened."""
    s = event.server
    mark = {"appear": "+", "update": "~", "leave": "-"}[event.kind]
    stamp = time.strftime("%H:%M:%S")
    detail = f"{s.users} user{'s' if s.users != 1 else ''}, {s.rooms} room" \
             f"{'s' if s.rooms != 1 else ''}"
    if event.kind == "leave":
        detail = {"stopped": "stopped", "silent": "no longer heard",
                  "replaced": "restarted"}.get(event.reason, event.reason)
    cluster = f"  [cluster {s.cluster}, node {s.node}]" if s.cluster else ""
    return f"{stamp} {mark} {s.name}  {s.address}  ({detail}){cluster}"


def format_cause(cause: Cause, port: int) -> str:
    """The advice for one likely cause of a failed discovery (`port`: the discovery port)."""
    kind = cause.kind
    if kind == "no_network":
        return ("no network interface except loopback is up: connect to the network "
                "(Wi-Fi/Ethernet) first")
    if kind == "interface_down":
        assert cause.interface is not None
        return (f"interface {cause.interface.name} ({cause.interface.address}) is down and "
                "was not probed")
    if kind == "send_failed":
        return (f"could not send to {cause.target}: {cause.error} (interface down, no route, "
                "or sending broadcasts is blocked)")
    if kind == "echo_missing":
        return (f"our own probe to {cause.target} did not come back: a local firewall is "
                f"probably dropping UDP port {port} (check ufw/firewalld/iptables, or Windows "
                "Defender Firewall / macOS firewall)")
    if kind == "cannot_listen":
        return (f"could not listen on UDP port {port} ({cause.error}), so the echo test was "
                "skipped; another program may hold the port")
    if kind == "loopback_only":
        return ("servers answered only on this machine: a server started with "
                "`--host 127.0.0.1` is invisible to other machines; use "
                "`chatkit serve --host 0.0.0.0`")
    return {
        "no_server": "no server is running with discovery on (a server started with "
                     "`--no-discovery` stays silent), or it uses another discovery port than "
                     f"{port} (`--discovery-port`)",
        "server_firewall": f"the server's firewall drops incoming UDP port {port} (the chat "
                           "port is TCP and may still work)",
        "client_isolation": "Wi-Fi client isolation (guest, hotel, café and some office "
                            "networks) blocks traffic between devices: use a network without "
                            "it, or a wired connection",
        "vpn": "a VPN is capturing your traffic or puts you on another subnet: disconnect it "
               "or allow local network access",
        "virtual_network": "containers and VMs (Docker bridge, WSL2, VirtualBox NAT) sit on "
                           "their own private network; broadcasts do not cross it: use host "
                           "networking or a bridged adapter",
        "other_subnet": "the server is on another subnet or VLAN: broadcasts do not cross "
                        "routers; try `--broadcast` with that subnet's broadcast address, or "
                        "the server's own address",
    }[kind]


def causes_text(report: DiagnoseReport) -> list[str]:
    return [format_cause(cause, report.discovery_port) for cause in report.causes]


def diagnose_to_dict(report: DiagnoseReport) -> dict[str, Any]:
    """The self-test report as `--diagnose --json` prints it."""
    return {
        "discovery_port": report.discovery_port, "timeout": report.timeout,
        "interfaces": [{"name": i.name, "address": i.address, "prefix": i.prefix,
                        "up": i.up, "broadcast": i.broadcast} for i in report.interfaces],
        "targets": [dataclasses.asdict(t) for t in report.targets],
        "listening": report.listening, "listen_error": report.listen_error,
        "servers": [s.to_dict() for s in report.servers],
        "causes": causes_text(report), "fallback": FALLBACK,
    }


def format_diagnose(report: DiagnoseReport) -> str:
    """The self-test report for a terminal: interfaces, probes, servers, causes, fallback."""
    port = report.discovery_port
    lines = [f"Discovery self-test (UDP port {port}, {report.timeout:g} s)", "", "Interfaces:"]
    for i in report.interfaces:
        state = "up" if i.up else "DOWN"
        lines.append(f"  {i.name:<12} {i.address}/{i.prefix:<3} {state:<4} "
                     f"broadcast {i.broadcast or '-'}")
    if not report.listening:
        lines.append(f"  (could not listen on UDP {port}: {report.listen_error}; "
                     "echo test skipped)")
    lines += ["", "Probes:"]
    names = {s.instance: s.name for s in report.servers}
    for t in report.targets:
        where = f" via {t.interface}" if t.interface else ""
        if t.error:
            status = f"send FAILED: {t.error}"
        else:
            echo = {True: "own probe came back", False: "own probe NOT heard",
                    None: "echo n/a"}[t.echoed]
            answered = ", ".join(names.get(i, i) for i in t.servers) or "no answer"
            status = f"sent, {echo}; {answered}"
        lines.append(f"  {t.target:<16}{where}: {status}")
    lines.append("")
    if report.servers:
        lines += ["Servers found:", format_table(report.servers)]
    else:
        lines.append("No server answered.")
    if report.causes:
        lines += ["", "Likely causes:" if not report.servers else "Notes:"]
        lines += [f"  - {cause}" for cause in causes_text(report)]
    if not report.servers:
        lines += ["", f"Fallback: {FALLBACK}."]
    return "\n".join(lines)
