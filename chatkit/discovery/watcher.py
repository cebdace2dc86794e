"""Passive discovery: follow servers as they appear, change and leave.

Owns: `watch`, which listens for announcements on the shared discovery port and probes now and
then, and `WatchEvent`, what it yields. Decides when a server has left: it said so, a new
instance took over its address (a restart), or it fell silent for too long. Never prints.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from chatkit.discovery.probe import ServerFound
from chatkit.discovery.scope import resolve_targets
from chatkit.discovery.wire import (
    DISCOVERY_PORT,
    DatagramError,
    new_nonce,
    parse_server_info,
    receive,
    send_probe,
    udp_socket,
)

log = logging.getLogger("chatkit.discovery")

#: A passive listener forgets a server after this many missed announcements.
MISSED_ANNOUNCEMENTS = 3
MAX_WATCHED = 1024  # servers `watch` keeps track of at once


@dataclass(frozen=True)
class WatchEvent:
    """`kind`: appear, update (users/rooms/name changed) or leave; `reason` says why
    (appear: probe/announce; update: changed; leave: stopped/silent/replaced)."""

    kind: Literal["appear", "update", "leave"]
    server: ServerFound
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "reason": self.reason, "server": self.server.to_dict()}


def watch(*, broadcast: list[str] | None = None, discovery_port: int = DISCOVERY_PORT,
          probe_interval: float = 15.0, missed: int = MISSED_ANNOUNCEMENTS,
          stop: threading.Event | None = None, duration: float | None = None
          ) -> Iterator[WatchEvent]:
    """Listen for announcements and probe every `probe_interval` seconds; yield events.

    A server leaves when it announces its stop, when a new instance takes over its address
    (a restart), or when nothing was heard from it for `missed` announcement intervals.
    Runs until `stop` is set or `duration` has passed (or forever; Ctrl-C ends it).
    """
    targets = resolve_targets(broadcast)
    end = None if duration is None else time.monotonic() + duration
    listener: socket.socket | None
    try:
        listener = udp_socket(discovery_port, shared=True)
        listener.setblocking(False)
    except OSError as exc:
        listener = None
        log.warning("discovery: cannot listen for announcements on UDP %d (%s); probing only",
                    discovery_port, exc.strerror or exc)
    try:
        prober = udp_socket(0, shared=False)  # replies must not land on the shared port
    except BaseException:
        if listener is not None:
            listener.close()
        raise
    prober.setblocking(False)
    known: dict[str, ServerFound] = {}
    last_seen: dict[str, float] = {}  # only for instances in `known`

    def forget(instance: str) -> ServerFound:
        last_seen.pop(instance, None)
        return known.pop(instance)
    gone: dict[str, float] = {}  # stopped instances; late datagrams must not resurrect them
    nonces: dict[str, float] = {}
    next_probe = time.monotonic()

    def expiry(server: ServerFound) -> float:
        # We hear a live server at least once per announcement interval (when listening) and
        # once per probe; the 1.25 covers the announcement jitter.
        period = max(probe_interval, 0.05)
        if listener is not None:
            period = min(period, server.interval)
        return last_seen[server.instance] + missed * period * 1.25

    try:
        while (stop is None or not stop.is_set()) and (end is None or time.monotonic() < end):
            now = time.monotonic()
            if now >= next_probe:
                nonce = new_nonce()
                nonces[nonce] = now
                for old in [n for n, t in nonces.items() if now - t > 5.0]:
                    del nonces[old]
                for target in targets:
                    send_probe(prober, target, discovery_port, nonce)
                next_probe = now + max(0.05, probe_interval)
            for server in [s for s in known.values() if now > expiry(s)]:
                yield WatchEvent("leave", forget(server.instance), "silent")
            wait = 0.2 if end is None else max(0.0, min(0.2, end - now))
            sockets = [prober] + ([listener] if listener is not None else [])
            ready, _, _ = select.select(sockets, [], [], wait)
            for sock in ready:
                received = receive(sock)
                if received is None:
                    continue
                body, source = received
                rtt: float | None = None
                if body["type"] == "reply" and sock is prober and body.get("nonce") in nonces:
                    rtt = time.monotonic() - nonces[body["nonce"]]
                    event = "alive"
                elif body["type"] == "announce" and sock is listener \
                        and body.get("event") in ("start", "alive", "stop"):
                    event = body["event"]
                else:
                    continue
                try:
                    info = parse_server_info(body)
                except DatagramError:
                    continue
                server = ServerFound.heard(info, source, rtt)
                instance = server.instance
                if instance in gone:
                    continue
                if event == "stop":
                    gone[instance] = time.monotonic()
                    if len(gone) > 4096:
                        gone.pop(next(iter(gone)))
                    if instance in known:
                        yield WatchEvent("leave", forget(instance), "stopped")
                    continue
                if instance not in known and len(known) >= MAX_WATCHED:
                    continue  # a flood of spoofed announcements must not grow memory
                last_seen[instance] = time.monotonic()
                if instance in known:
                    before = known[instance]
                    changed = (before.users, before.rooms, before.name) != (
                        server.users, server.rooms, server.name)
                    before.merge(server)
                    if changed:
                        yield WatchEvent("update", before, "changed")
                    continue
                for other in [s for s in known.values()
                              if (s.host, s.port) == (server.host, server.port)
                              and not _other_node(s, server)]:
                    yield WatchEvent("leave", forget(other.instance), "replaced")
                known[instance] = server
                yield WatchEvent("appear", server, "announce" if rtt is None else "probe")
    finally:
        prober.close()
        if listener is not None:
            listener.close()


def _other_node(one: ServerFound, other: ServerFound) -> bool:
    """Whether two servers at one address and port are two nodes of one cluster, sharing
    the port (`serve --reuse-port`): neither replaces the other."""
    return one.cluster is not None and one.cluster == other.cluster and one.node != other.node
