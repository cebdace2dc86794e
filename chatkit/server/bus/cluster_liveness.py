"""Liveness of a node of a cluster: its heartbeat, other nodes' deaths, and Redis's outages.

One thread (`chatkit-cluster-beat`), every second:

- says this node is alive (`alive:<node>` expires after 5 s) and publishes its addresses,
  fingerprint and load, which `welcome` and discovery show (`view`);
- reaps nodes whose heartbeat expired, in one script: their people quit on every node and
  their nicknames are freed. Only once this node has reached Redis for 6 s: after an outage,
  the first node back must not reap the others before they could say they are alive;
- finds when this node itself was dropped (it stalled past its heartbeat, or Redis lost its
  data) and says again who is connected here (`_reassert`, with cluster_rejoin.py).

Every thread of the bus reports Redis going away and coming back here (`went_down`,
`came_back`): each is told to this node's people once, as a notice.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from chatkit.protocol import name_key
from chatkit.protocol.events import ClusterInfo, ClusterNode, JoinEvent
from chatkit.server.bus.cluster_entries import back_entry
from chatkit.server.bus.cluster_redis import ALIVE_MS, ClusterUnavailable
from chatkit.server.bus.cluster_rejoin import back_joins, lost_nick
from chatkit.server.hub.pending import Pending
from chatkit.server.hub.remote import RemoteMember

if TYPE_CHECKING:
    from chatkit.server.bus.cluster import ClusterBus

log = logging.getLogger("chatkit.server")

HEARTBEAT_SECONDS = 1.0
#: people's lines a node keeps while Redis does not answer; more are refused
#: (`cluster_unavailable`, ClusterBus.submit)
MAX_HELD = 1_000
#: what `welcome` lists at most (it must fit in a frame): nodes, and addresses of each
MAX_VIEW_NODES = 16
MAX_VIEW_ADDRESSES = 4


class Liveness:
    """See the module docstring."""

    def __init__(self, bus: ClusterBus, stopping: threading.Event) -> None:
        self.bus = bus
        self._stopping = stopping
        self.down_since: float | None = None  # Redis stopped answering then; None: it answers
        self._down_lock = threading.Lock()  # three threads notice an outage: one notice
        self._up_since = time.monotonic()
        self._infos: dict[str, dict[str, Any]] = {}
        #: this node was missing from Redis's set of nodes: its people must be told again
        self._dropped = False
        self._thread = threading.Thread(target=self._run, name="chatkit-cluster-beat",
                                        daemon=True)

    def first_beat(self) -> None:
        try:
            self._heartbeat()
            self._infos = self.bus.link.node_infos()
        except ClusterUnavailable as exc:
            self.went_down(exc)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def view(self, name: str) -> ClusterInfo:
        """The cluster as `welcome` names it: this node first, then the least loaded."""
        own = self.bus.node
        ordered = sorted(self._infos.items(),
                         key=lambda item: (item[0] != own, _users(item[1]), item[0]))
        nodes: list[ClusterNode] = []
        for node, info in ordered[:MAX_VIEW_NODES]:
            addresses = info.get("addresses")
            fingerprint = info.get("fingerprint")
            nodes.append({"id": node,
                          "addresses": [a for a in addresses if isinstance(a, str)][
                              :MAX_VIEW_ADDRESSES] if isinstance(addresses, list) else [],
                          "fingerprint": fingerprint if isinstance(fingerprint, str) else None,
                          "users": _users(info)})
        return {"name": name, "node": own, "nodes": nodes}

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        link = self.bus.link
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                if self._heartbeat():
                    self._dropped = True
                self.came_back()
                if self._dropped:
                    self._reassert()
                nodes, dead = link.nodes()
                dead.discard(self.bus.node)
                if time.monotonic() - self._up_since > ALIVE_MS / 1000 + 1:
                    # A node this hub still shows people of, unknown to Redis (which lost its
                    # data while that node died): reaped too, or they would stay for ever.
                    for node in self._shown_nodes() - nodes - {self.bus.node}:
                        link.enlist(node)
                        dead.add(node)
                    for node in sorted(dead):
                        if link.reap(node, "their server went away"):
                            log.warning("cluster: node %s stopped answering; its people "
                                        "were logged out", node)
                self._infos = {node: info for node, info in link.node_infos().items()
                               if node not in dead}
            except ClusterUnavailable as exc:
                self.went_down(exc)
            except Exception:  # never lose the thread
                log.exception("internal error in the cluster heartbeat")

    def _heartbeat(self) -> bool:
        try:
            info = self.bus.node_info()
        except Exception:  # the server's own view; never fatal to the heartbeat
            info = {}
        return self.bus.link.heartbeat(info)

    def _shown_nodes(self) -> set[str]:
        hub = self.bus.hub
        if hub is None:
            return set()
        with hub.lock:
            return {m.node for m in hub.nicks.values() if isinstance(m, RemoteMember)}

    def _reassert(self) -> None:
        """This node was dropped from the cluster (Redis lost its data, or this node stalled
        past its heartbeat): claim its people's nicknames again and tell the others who they
        are: the others hear its people join again (if they saw them quit). Someone who lost a
        nickname meanwhile is disconnected, saying why (cluster_rejoin.py)."""
        bus, hub = self.bus, self.bus.hub
        if hub is None:
            return
        log.warning("cluster: this node was dropped by the cluster; telling it again who is "
                    "connected here")
        with hub.lock:  # Redis answers again: a claim fails only if someone took the nick
            for member in [m for m in hub.nicks.values() if not m.remote]:
                key = name_key(member.nick or "")
                claim = bus.link.claim(key, member.resume_token, member.client_id,
                                       take_over=False)
                if claim == 0:
                    lost_nick(hub, member)
                    continue
                member.claim = abs(claim)
                for event in back_joins(hub, member):
                    def entry(seq: int, event: JoinEvent = event, key: str = key
                              ) -> dict[str, Any]:
                        return back_entry(event, key, bus.node, seq)

                    bus.enqueue(entry, Pending(event, recipients=[]))  # nobody here
                bus.member_changed(member)
        self._dropped = False

    # ------------------------------------------------------------------ Redis away and back

    def went_down(self, exc: BaseException) -> None:
        with self._down_lock:
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
        log.error("cluster: Redis at %s is not answering (%s); holding what people send",
                  self.bus.link.where, exc)
        self._tell_everyone("the cluster's Redis is not answering: what you send is held "
                            f"(up to {MAX_HELD} lines) and goes out when it is back")

    def came_back(self) -> None:
        with self._down_lock:
            if self.down_since is None:
                return
            lost = time.monotonic() - self.down_since
            self.down_since = None
            self._up_since = time.monotonic()
        log.warning("cluster: Redis at %s answers again after %.0f s", self.bus.link.where, lost)
        self._tell_everyone(f"the cluster's Redis is back after {lost:.0f} s: held lines "
                            "are sent")

    def _tell_everyone(self, text: str) -> None:
        hub = self.bus.hub
        if hub is None:
            return
        with hub.lock:
            local = [m for m in hub.nicks.values() if not m.remote]
            frame = hub.notice(text)
        for member in local:
            member.send_frame(frame)


def _users(info: dict[str, Any]) -> int:
    users = info.get("users")
    return users if isinstance(users, int) and not isinstance(users, bool) and users >= 0 else 0
