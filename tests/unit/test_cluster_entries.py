"""Entries another node of a cluster wrote, read back by this node (no sockets, no Redis):
what reaches this node's clients is checked and sanitised, and a member record is folded
into the hub by its claim."""

from __future__ import annotations

import json

from chatkit.server.bus.cluster_entries import STATE, remote_pending
from chatkit.server.bus.local import LocalBus
from chatkit.server.hub.hub import Hub
from chatkit.server.hub.remote import RemoteMember, apply_record
from chatkit.store import MessageStore


def _hub() -> Hub:
    return Hub("test", LocalBus(MessageStore(":memory:")))


def test_an_escape_sequence_in_another_nodes_event_is_sanitised():
    hub = _hub()
    event = {"type": "message", "room": "lobby", "nick": "mallory",
             "text": "hi \x1b]0;pwned\x07 there", "action": False, "id": 0, "ts": 1.0}
    pending, _row = remote_pending(hub, "n2", 42, {b"o": b"n2", b"s": b"1",
                                                   b"e": json.dumps(event).encode(),
                                                   b"t": b"rlobby"})
    assert pending.event["id"] == 42
    assert "\x1b" not in pending.event["text"] and "\x07" not in pending.event["text"]


def test_a_malformed_event_is_skipped_not_delivered():
    hub = _hub()
    bad = {"type": "message", "room": "lobby", "nick": 7, "text": None, "id": 0, "ts": -5}
    pending, row = remote_pending(hub, "n2", 43, {b"o": b"n2", b"s": b"1",
                                                  b"e": json.dumps(bad).encode(),
                                                  b"k": b"message"})
    assert pending.event["type"] == STATE and row is None


def test_a_newer_claim_on_a_nick_wins_and_an_older_record_is_ignored():
    hub = _hub()
    with hub.lock:
        apply_record(hub, "n2", "alice", {"nick": "alice", "rooms": ["lobby"]}, claim=5)
        # node n3 reports alice with an older claim: n2's holds
        apply_record(hub, "n3", "alice", {"nick": "alice", "rooms": ["den"]}, claim=4)
        holder = hub.nicks["alice"]
        assert isinstance(holder, RemoteMember) and holder.node == "n2"
        assert set(holder.rooms) == {"lobby"}
        # her client moved to n3: a newer claim
        apply_record(hub, "n3", "alice", {"nick": "alice", "rooms": ["den"]}, claim=6)
        holder = hub.nicks["alice"]
        assert isinstance(holder, RemoteMember) and holder.node == "n3"
        assert "alice" not in hub.rooms["lobby"].members
        assert "alice" in hub.rooms["den"].members
        # n2's late "gone" for the alice it had does not touch n3's
        apply_record(hub, "n2", "alice", None)
        assert hub.nicks["alice"] is holder


def test_a_record_with_a_bad_nick_or_room_is_cut_to_what_is_valid():
    hub = _hub()
    with hub.lock:
        apply_record(hub, "n2", "x", {"nick": "\x1b[2J", "rooms": ["lobby"]}, claim=1)
        assert "x" not in hub.nicks
        apply_record(hub, "n2", "bob", {"nick": "bob", "rooms": ["ok", "bad room\n", 7]},
                     claim=1)
        assert set(hub.nicks["bob"].rooms) == {"ok", "7"}  # the bad name is left out
