"""The discovery self-test: when no server answers, why not?

Owns: `diagnose`, which probes every target with its own nonce while listening on the discovery
port itself, to tell "our broadcast never left / never came back" from "nobody answered"; the
report it returns (`DiagnoseReport`, one `TargetCheck` per target) and the likely causes it
infers (`Cause`: a kind plus the facts it is about). The words shown for each cause, and the
fallback advice, belong to the CLI: this module returns data and never prints.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Literal

from chatkit.discovery.probe import ServerFound, probe_targets
from chatkit.discovery.scope import LOOPBACK_BROADCAST, resolve_targets
from chatkit.discovery.wire import DISCOVERY_PORT, udp_socket
from chatkit.net.interfaces import Interface, interfaces

CauseKind = Literal[
    "no_network",  # no interface but loopback is up
    "interface_down",  # `interface` is down and was not probed
    "send_failed",  # sending to `target` failed with `error`
    "echo_missing",  # our own broadcast to `target` did not come back: a local firewall
    "cannot_listen",  # the discovery port could not be opened (`error`): no echo test
    "loopback_only",  # servers answered, but only on this machine
    # Nothing answered; in the order they are worth checking:
    "no_server",  # no server with discovery on, or on another discovery port
    "server_firewall",
    "client_isolation",
    "vpn",
    "virtual_network",
    "other_subnet",
]

#: When no server answered, these are always possible, whatever else was found.
NOTHING_ANSWERED: tuple[CauseKind, ...] = (
    "no_server", "server_firewall", "client_isolation", "vpn", "virtual_network",
    "other_subnet")


@dataclass(frozen=True)
class Cause:
    """One likely reason; which fields are set depends on `kind` (see CauseKind)."""

    kind: CauseKind
    interface: Interface | None = None
    target: str | None = None
    error: str | None = None


@dataclass
class TargetCheck:
    """What happened to the probe sent to one target."""

    target: str
    interface: str | None  # our interface whose broadcast address this is
    address: str | None  # our address on it
    network: str | None
    error: str | None  # sending failed
    echoed: bool | None  # our own broadcast came back; None when that cannot be expected/seen
    servers: list[str] = field(default_factory=list)  # instances that answered this probe


@dataclass
class DiagnoseReport:
    discovery_port: int
    timeout: float
    interfaces: list[Interface]
    targets: list[TargetCheck]
    listening: bool
    listen_error: str | None
    servers: list[ServerFound]
    causes: list[Cause]

    @property
    def ok(self) -> bool:
        return bool(self.servers)


def diagnose(*, timeout: float = 2.0, broadcast: list[str] | None = None,
             discovery_port: int = DISCOVERY_PORT) -> DiagnoseReport:
    """Probe every target with its own nonce while listening on the discovery port ourselves,
    to tell "our broadcast never left/came back" from "nobody answered"."""
    all_interfaces = interfaces()
    targets = resolve_targets(broadcast)
    listener: socket.socket | None = None
    listen_error = None
    try:
        listener = udp_socket(discovery_port, shared=True)
        listener.setblocking(False)
    except OSError as exc:
        listen_error = exc.strerror or str(exc)
    try:
        results = probe_targets(targets, timeout=timeout, discovery_port=discovery_port,
                                attempts=2, per_target_nonce=True, listener=listener)
    finally:
        if listener is not None:
            listener.close()
    checks: list[TargetCheck] = []
    for target in targets:
        owner = next((i for i in all_interfaces if i.broadcast == target), None)
        if owner is None and target == LOOPBACK_BROADCAST:
            owner = Interface("lo", "127.0.0.1", 8, True)
        # Only a broadcast reaches every socket sharing the port. A probe to one of our own
        # unicast addresses reaches just one of them (SO_REUSEPORT picks one; a server or a
        # watcher on this host may be it), so its echo missing proves nothing: unknown, not
        # "not heard", and never a firewall verdict.
        echoed: bool | None = None
        if listener is not None and target in results.echoed:
            echoed = True
        elif listener is not None and owner is not None:
            echoed = False
        checks.append(TargetCheck(
            target=target,
            interface=owner.name if owner else None,
            address=owner.address if owner else None,
            network=str(owner.network) if owner else None,
            error=results.send_errors.get(target),
            echoed=echoed,
            servers=results.by_target.get(target, []),
        ))
    report = DiagnoseReport(
        discovery_port=discovery_port, timeout=timeout, interfaces=all_interfaces,
        targets=checks, listening=listener is not None, listen_error=listen_error,
        servers=results.servers(), causes=[])
    report.causes = likely_causes(report)
    return report


def likely_causes(report: DiagnoseReport) -> list[Cause]:
    """What the report's facts point to, most specific first."""
    causes: list[Cause] = []
    lan = [i for i in report.interfaces if not i.loopback]
    if not any(i.up for i in lan):
        causes.append(Cause("no_network"))
    for down in [i for i in lan if not i.up]:
        causes.append(Cause("interface_down", interface=down))
    for check in report.targets:
        if check.error:
            causes.append(Cause("send_failed", target=check.target, error=check.error))
        elif check.echoed is False:
            causes.append(Cause("echo_missing", target=check.target))
    if report.listen_error:
        causes.append(Cause("cannot_listen", error=report.listen_error))
    if report.servers:
        probed_lan = any(t.target != LOOPBACK_BROADCAST for t in report.targets)
        if probed_lan and all(ipaddress.ip_address(s.host).is_loopback for s in report.servers):
            causes.append(Cause("loopback_only"))
        return causes
    causes += [Cause(kind) for kind in NOTHING_ANSWERED]
    return causes
