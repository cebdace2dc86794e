"""Entries of the cluster's log: what one node writes for an accepted event or a change of
membership, and how every other node turns it back into something to deliver.

A node writes, for each event: the event (its id is given by Redis when appended), who it is for
(a room by name, or nicknames), its kind when the log keeps it, the client's tagged line, and for
a change of its members the member's new record. A batch of them is one entry of the log
(cluster_redis.py), decoded once by each other node. The origin node delivers its own entries
from its own `Pending` (sender, `ref`, the objects it named); any other node rebuilds one whose
recipients are read, like everything else, under the hub's lock in log order (`remote_pending`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from chatkit.protocol import FrameError, compact_json, name_key
from chatkit.protocol.checks import check_server_frame
from chatkit.protocol.events import Event
from chatkit.protocol.sanitize import sanitize_frame
from chatkit.server.bus.cluster_redis import EncodedBatch, load_json, topic_json
from chatkit.server.hub.history import stored_row
from chatkit.server.hub.moderation_requests import enforce_bans, remove_from_room
from chatkit.server.hub.pending import Pending
from chatkit.server.hub.remote import RemoteMember, apply_record, drop_node
from chatkit.server.hub.repeats import SentLine
from chatkit.store import SavedTopic, StoredMessage, StoreError

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub
    from chatkit.server.hub.member import Member

log = logging.getLogger("chatkit.server")

STATE = "_state"  # the `type` of the stand-in event of an entry that only changes membership
_ITEM_FIELDS = ("e", "t", "k", "c", "m", "a")  # what a batch's item carries of an entry
_EVENT_ONLY = frozenset("etkc")  # an item with only these keys changes nothing but its event
# JSON text whose strings are printable ASCII once decoded has neither a byte outside it nor an
# escape but \" and \\ (`_plain`)
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))
_ESCAPE = re.compile(rb'\\[^"]')


def event_entry(pending: Pending, seq: int) -> dict[str, Any]:
    """The entry for an accepted event (built under the hub's lock: names as they are now;
    encoded by the appender, cluster_redis.py)."""
    entry: dict[str, Any] = {"s": seq, "e": pending.event}
    # Who it is for, as plain text: "r" + the room [+ "\n" + the nick key it is not for], or
    # "n" + nick keys, one a line (names never hold a line break). Rarer targets are objects.
    if pending.room is not None:
        target = "r" + pending.room.name
        if pending.exclude is not None and pending.exclude.nick:
            target += "\n" + name_key(pending.exclude.nick)
    else:
        target = "n" + "\n".join(name_key(m.nick) for m in pending.recipients or [] if m.nick)
    entry["t"] = target
    row = pending.row
    if row is not None:
        entry["k"] = row.kind
        if row.room is not None:
            entry["rk"] = name_key(row.room)  # kept in the room's stream too (history)
        if row.kind == "topic" and row.room is not None:
            entry["tk"] = name_key(row.room)
            if row.text:
                entry["topic"] = topic_json(SavedTopic(row.room, row.text, row.nick, row.ts))
    if pending.line is not None:
        entry["c"] = list(pending.line)
    return entry


def encode_batch(entries: list[dict[str, Any]]) -> EncodedBatch:
    """A batch of this node's entries (consecutive sequence numbers) as one entry of the log.

    Each entry is encoded once, as one JSON object (no JSON inside JSON strings: nothing is
    escaped twice); a stored event's room stream keeps that same item, which Redis cuts out
    of the batch by its byte offsets (`_APPEND`), so no entry costs a script argument."""
    items: list[bytes] = []
    rooms: list[str] = []
    changes: list[object] = []
    start = 2  # Lua counts from 1, after the batch's "["
    for index, entry in enumerate(entries):
        item = compact_json({key: entry[key] for key in _ITEM_FIELDS if key in entry}).encode()
        items.append(item)
        if "rk" in entry:
            rooms.append(f"{index} {start} {start + len(item) - 1} {entry['rk']}\n")
        start += len(item) + 1  # and its ","
        if "mk" in entry:
            changes += ["m", entry["mk"], entry.get("mrec", ""), entry["tok"],
                        entry.get("mold", "")]
        if "tk" in entry:
            changes += ["t", entry["tk"], entry.get("topic", "")]
    return EncodedBatch(entries[-1]["s"], len(entries), b"[" + b",".join(items) + b"]",
                        "".join(rooms), changes)


def member_entry(member: Member, seq: int, old_nick: str | None) -> dict[str, Any]:
    """The entry for a member's new nick or rooms, or its leaving (retired)."""
    key = name_key(member.nick or "")
    record = None if member.retired else {
        "nick": member.nick, "rooms": [room.name for room in member.rooms.values()],
        "quiet": member.quiet, "account": member.account, "admin": member.admin,
        "peer": member.peer, "claim": member.claim}
    old = name_key(old_nick) if old_nick is not None else None
    entry: dict[str, Any] = {"s": seq, "mk": key, "tok": member.resume_token,
                             "m": {"key": key, "rec": record, "old": old, "claim": member.claim}}
    if record is not None:
        entry["mrec"] = json.dumps(record)
    if old is not None and old != key:
        entry["mold"] = old
    return entry


def back_entry(event: Event, key: str, node: str, seq: int) -> dict[str, Any]:
    """The `join` of member `key` of `node` in a room, after the cluster dropped that node (its
    heartbeat expired while it stalled) and it said again who it has: heard on another node
    only by those who saw the member quit there (`_resolve`), so never twice."""
    target = {"back": key, "node": node, "in": event.get("room")}
    return {"s": seq, "e": event, "t": target}


def act_entry(target: Member, seq: int, action: str, room: str | None, reason: str
              ) -> dict[str, Any]:
    """The entry asking the node of `target` (a member of another node) to kick or kill it."""
    node = target.node if isinstance(target, RemoteMember) else ""
    return {"s": seq, "a": {"do": action, "key": name_key(target.nick or ""), "node": node,
                            "room": room, "reason": reason}}


def state_event(id_: int) -> Event:
    return cast(Event, {"type": STATE, "id": id_, "ts": 0.0})


def own_pending(pending: Pending | None, id_: int, *, archive: bool) -> Pending:
    """This node's own entry coming back from the log: its event gets its cluster id (and
    its row too, when this node keeps an archive)."""
    if pending is None:  # a change of membership, made here when it was accepted
        return Pending(state_event(id_), recipients=[])
    pending.event["id"] = id_
    if archive and pending.row is not None:
        pending.row = replace(pending.row, id=id_)
    return pending


def entry_items(id_: int, fields: Mapping[bytes, bytes]
                ) -> tuple[list[tuple[int, Mapping[str, Any]]], bool]:
    """Another node's entry of the log as (id, item) pairs, and whether its text is plain (no
    byte outside printable ASCII, no JSON escape but \\" and \\\\: nothing in it can need
    sanitising). A batch (`b`: a JSON list of `n` items) has the ids up to the entry's own,
    one each; an entry written alone (a reaped node's quits, a note) is one item. A batch
    whose count is wrong is skipped, saying so."""
    payload = fields.get(b"b")
    if payload is None:
        return [(id_, _fields_item(fields))], False
    items = load_json(payload)
    count = fields.get(b"n", b"")
    if not isinstance(items, list) or not count.isdigit() or len(items) != int(count) or \
            not all(isinstance(item, dict) for item in items):
        log.warning("cluster: a malformed batch in the log (id %d) was skipped", id_)
        return [], False
    first = id_ - len(items) + 1
    return [(first + index, item) for index, item in enumerate(items)], \
        _plain(payload)


def _plain(text: bytes) -> bool:
    """Whether the strings of JSON `text` are printable ASCII once decoded: nothing in them can
    need sanitising. (A false "no" only costs sanitising.)"""
    if text.translate(None, _PRINTABLE_ASCII):  # a byte outside printable ASCII is left
        return False
    # The escapes, once the \\ pairs are gone (a run of backslashes pairs from its left, as
    # JSON reads it): any but \" could make a control character
    return b"\\" not in text or _ESCAPE.search(text.replace(b"\\\\", b"")) is None


def _fields_item(fields: Mapping[bytes, bytes]) -> dict[str, Any]:
    """An entry written alone, as a batch's item (its fields are JSON or text)."""
    item: dict[str, Any] = {}
    for key in (b"e", b"m", b"c", b"a"):
        if key in fields:
            item[key.decode()] = load_json(fields[key])
    for key in (b"g", b"k", b"r"):
        if key in fields:
            item[key.decode()] = fields[key].decode("utf-8", "replace")
    target = fields.get(b"t")
    if target is not None:
        item["t"] = load_json(target) if target[:1] == b"{" else \
            target.decode("utf-8", "replace")
    return item


def remote_pending(hub: Hub, node: str, id_: int, item: Mapping[str, Any], *,
                   archive: bool = False, plain: bool = False
                   ) -> tuple[Pending, StoredMessage | None]:
    """Another node's item as a `Pending` for this node's members, and what the local archive
    keeps of it (with `archive`). The recipients are resolved when it is delivered (`apply`,
    under the lock). `plain`: its entry's text needs no sanitising (`entry_items`)."""
    event = _event(item.get("e"), id_, plain)
    pending = Pending(event if event is not None else state_event(id_), recipients=[])
    kind = _text(item.get("k"))
    row = None
    if archive and event is not None and kind in ("message", "action", "topic", "private"):
        try:
            row = stored_row(event, kind)
        except (KeyError, TypeError):
            row = None
    line = _sent_line(item.get("c")) if event is not None else None
    target = item.get("t")
    if event is not None and kind != "topic" and isinstance(target, str) and \
            target[:1] == "r" and item.keys() <= _EVENT_ONLY:
        # Most items: an event for a room, and nothing else to change
        room_key = name_key(target[1:].partition("\n")[0])

        def apply_room() -> None:
            pending.room = hub.rooms.get(room_key)
            if pending.room is None:
                pending.recipients = []
            if line is not None:
                hub.sent_lines.remember(*line, event)

        pending.apply = apply_room
        return pending, row
    resolved = _target(target)
    member_op = item.get("m")
    gone = _text(item.get("g"))
    act = item.get("a")
    reload = _text(item.get("r"))

    def apply() -> None:
        if resolved is not None:
            _resolve(hub, pending, resolved)
        if isinstance(member_op, dict) and isinstance(member_op.get("key"), str):
            old = member_op.get("old")
            claim = member_op.get("claim")
            apply_record(hub, node, member_op["key"], _record(member_op.get("rec")),
                         old if isinstance(old, str) else None,
                         claim if isinstance(claim, int) else 0)
        if event is not None and kind == "topic":
            _set_topic(hub, event)
        if line is not None and event is not None:
            hub.sent_lines.remember(*line, event)
        if gone:
            drop_node(hub, gone)
        if isinstance(act, dict):
            _act(hub, act)
        if reload is not None:
            _reload(hub, reload)

    pending.apply = apply
    return pending, row


def _sent_line(value: object) -> SentLine | None:
    """The client's tagged line an item says its event was (hub/repeats.py), if well formed."""
    if not isinstance(value, list) or len(value) != 3 or not isinstance(value[0], str) or \
            not isinstance(value[1], (str, int)) or not isinstance(value[2], list) or \
            not all(v is None or isinstance(v, (str, int, float)) for v in value[2]):
        return None  # a tag is a string or a number, a line's content plain values
    return value[0], value[1], tuple(value[2])


def _reload(hub: Hub, what: str) -> None:
    """Another node changed accounts or moderation in Redis: read them again, as on SIGHUP.
    Redis gone meanwhile: the next change, or SIGHUP, reads them (never stop the delivery)."""
    try:
        if what == "accounts":
            hub.accounts.reload()
        elif what == "moderation":
            hub.moderation.load(hub.lock)
            enforce_bans(hub)
    except StoreError as exc:
        log.warning("cluster: %s not read again: %s", what, exc)


def _act(hub: Hub, act: dict[str, Any]) -> None:
    """Another node asks this one to kick or kill one of its members (moderation there)."""
    key, reason = act.get("key"), act.get("reason")
    member = hub.nicks.get(key) if isinstance(key, str) else None
    if member is None or member.remote or not isinstance(reason, str):
        return  # gone meanwhile, or not ours
    if act.get("do") == "kill":
        hub.retire(member, reason)
        member.end(reason)
        return
    room = member.rooms.get(name_key(str(act.get("room") or "")))
    if act.get("do") == "kick" and room is not None:
        remove_from_room(hub, member, room, reason)


def _resolve(hub: Hub, pending: Pending, target: dict[str, Any]) -> None:
    """Who of this node's members gets it, read now (in log order, under the lock)."""
    back = target.get("back")
    if isinstance(back, str):  # back after its node was dropped: for those who saw it quit
        room = hub.rooms.get(name_key(str(target.get("in"))))
        member = hub.nicks.get(back)
        seen = isinstance(member, RemoteMember) and member.node == target.get("node") and \
            room is not None and member.rooms.get(name_key(room.name)) is room
        pending.recipients = [] if seen or room is None else \
            [m for m in room.members.values() if not m.remote]
        return
    room = target.get("room")
    if isinstance(room, str):
        pending.room = hub.rooms.get(name_key(room))
        if pending.room is None:
            pending.recipients = []
        return
    co = target.get("co")
    if isinstance(co, str):  # a member of a node that died: its co-members hear it quit
        member = hub.nicks.get(co)
        if isinstance(member, RemoteMember) and member.node == target.get("node"):
            pending.recipients = [m for m in hub.co_members(member, crowds=False)
                                  if not m.remote]
            hub.retire(member, None, announce=False)
        return
    keys = target.get("to")
    members = [hub.nicks.get(k) for k in keys if isinstance(k, str)] \
        if isinstance(keys, list) else []
    pending.recipients = [m for m in members if m is not None and not m.remote]


def _set_topic(hub: Hub, event: Mapping[str, Any]) -> None:
    room_name, text, nick, ts = event.get("room"), event.get("text"), event.get("nick"), \
        event.get("ts")
    if not isinstance(room_name, str) or not isinstance(nick, str):
        return
    text = text if isinstance(text, str) and text else None
    room = hub.rooms.get(name_key(room_name))
    if room is not None:
        hub.set_topic(room, text, nick, float(ts) if isinstance(ts, (int, float)) else 0.0)
    elif text:
        hub.topics[name_key(room_name)] = SavedTopic(room_name, text, nick, float(ts or 0))
    else:
        hub.topics.pop(name_key(room_name), None)


def _target(value: object) -> dict[str, Any] | None:
    """Who an item is for (`event_entry`), as `_resolve` reads it."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value:
        return None
    text = value[1:]
    if value[0] == "r":
        room, _, exclude = text.partition("\n")
        return {"room": room, "x": exclude} if exclude else {"room": room}
    if value[0] == "n":
        return {"to": text.split("\n") if text else []}
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _event(value: object, id_: int, plain: bool) -> Event | None:
    """Another node's event, checked like any frame a client receives and sanitised again
    unless its text is `plain` (whoever can write to Redis must not reach a terminal with an
    escape sequence); None for one that is not a frame."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    event: dict[str, Any] = value if plain else sanitize_frame(value)
    event["id"] = id_
    try:
        check_server_frame(event)
    except FrameError:
        log.warning("cluster: a malformed event in the log (id %d) was skipped", id_)
        return None
    return cast(Event, event)


def _record(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
