"""Entries another node of a cluster wrote, read back by this node (no sockets, no Redis):
what reaches this node's clients is checked and sanitised, and a member record is folded
into the hub by its claim."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatkit.protocol import sanitize_text
from chatkit.server.bus.cluster_entries import STATE, encode_batch, entry_items, remote_pending
from chatkit.server.bus.local import LocalBus
from chatkit.server.hub.hub import Hub
from chatkit.server.hub.remote import RemoteMember, apply_record
from chatkit.store import MessageStore


def _hub() -> Hub:
    return Hub("test", LocalBus(MessageStore(":memory:")))


def _batch_fields(entries: list[dict[str, Any]]) -> dict[bytes, bytes]:
    """What another node's batch is in the log (cluster_redis._APPEND writes these fields)."""
    encoded = encode_batch(entries)
    return {b"o": b"n2", b"s": str(encoded.last_seq).encode(),
            b"n": str(encoded.count).encode(), b"b": encoded.items}


@pytest.mark.parametrize("text", ["hi \x1b]0;pwned\x07 there", "hi \u202eereht",
                                  "hi \x9b31m there", "tab\there", "back\\\nslash"])
def test_an_escape_sequence_in_another_nodes_event_is_sanitised(text: str):
    hub = _hub()
    event = {"type": "message", "room": "lobby", "nick": "mallory", "text": text,
             "action": False, "id": 0, "ts": 1.0}
    [(id_, item)], plain = entry_items(42, _batch_fields([{"s": 1, "e": event,
                                                            "t": "rlobby"}]))
    pending, _row = remote_pending(hub, "n2", id_, item, plain=plain)
    assert not plain and pending.event["id"] == 42
    assert pending.event["text"] == sanitize_text(text) != text


@pytest.mark.parametrize("text", ['say "hi" \\o/', "\\u001b[31m is how", "a\\\\\\\"b"])
def test_plain_ascii_text_is_known_to_need_no_sanitising(text: str):
    event = {"type": "message", "room": "lobby", "nick": "bob", "text": text,
             "action": False, "id": 0, "ts": 1.0}
    [(id_, item)], plain = entry_items(42, _batch_fields([{"s": 1, "e": event,
                                                            "t": "rlobby"}]))
    pending, _row = remote_pending(_hub(), "n2", id_, item, plain=plain)
    assert plain and pending.event["text"] == text



def test_a_malformed_event_is_skipped_not_delivered():
    hub = _hub()
    bad = {"type": "message", "room": "lobby", "nick": 7, "text": None, "id": 0, "ts": -5}
    [(id_, item)], _plain = entry_items(43, _batch_fields([{"s": 1, "e": bad,
                                                            "k": "message"}]))
    pending, row = remote_pending(hub, "n2", id_, item, archive=True)
    assert pending.event["type"] == STATE and row is None


def test_a_batch_gives_its_items_the_ids_up_to_its_own():
    events = [{"type": "message", "room": "lobby", "nick": "bob", "text": f"line {n}",
               "action": False, "id": 0, "ts": 1.0} for n in range(3)]
    fields = _batch_fields([{"s": 5 + n, "e": e, "t": "rlobby", "k": "message"}
                            for n, e in enumerate(events)])
    items, _plain = entry_items(100, fields)
    assert [id_ for id_, _item in items] == [98, 99, 100]
    hub = _hub()
    rows = [remote_pending(hub, "n2", id_, item, archive=True)[1] for id_, item in items]
    assert [(r.id, r.text) for r in rows if r is not None] == \
        [(98, "line 0"), (99, "line 1"), (100, "line 2")]


def test_a_batch_whose_count_is_wrong_is_skipped():
    event = {"type": "message", "room": "lobby", "nick": "bob", "text": "hi", "action": False,
             "id": 0, "ts": 1.0}
    fields = _batch_fields([{"s": 1, "e": event, "t": "rlobby"}])
    assert entry_items(7, {**fields, b"n": b"2"}) == ([], False)
    assert entry_items(7, {**fields, b"b": b"not json"}) == ([], False)


def test_an_entry_written_alone_is_one_item():
    """A reaped node's quits are written by a script, one entry each, fields as JSON."""
    event = {"type": "quit", "nick": "bob", "reason": "gone", "id": 0, "ts": 1.0}
    [(id_, item)], _plain = entry_items(9, {b"o": b"", b"s": b"0",
                                            b"e": json.dumps(event).encode(),
                                            b"t": b'{"co": "bob", "node": "n2"}'})
    assert id_ == 9 and item["e"]["nick"] == "bob" and item["t"] == {"co": "bob", "node": "n2"}


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
