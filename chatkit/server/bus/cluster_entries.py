"""Entries of the cluster's log: what one node writes for an accepted event or a change of
membership, and how every other node turns it back into something to deliver.

A node writes, for each event: the event (its id is given by Redis when appended), who it is for
(a room by name, or nicknames), what the log keeps of it, the client's tagged line, and for a
change of its members the member's new record. The origin node delivers its own entries from
its own `Pending` (sender, `ref`, the objects it named); any other node rebuilds one whose
recipients are read, like everything else, under the hub's lock in log order (`remote_pending`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from chatkit.protocol import FrameError, name_key
from chatkit.protocol.checks import check_server_frame
from chatkit.protocol.events import Event
from chatkit.protocol.sanitize import sanitize_frame
from chatkit.server.bus.cluster_redis import load_json, row_json, topic_json
from chatkit.server.hub.history import stored_row
from chatkit.server.hub.moderation_requests import enforce_bans, remove_from_room
from chatkit.server.hub.pending import Pending
from chatkit.server.hub.remote import RemoteMember, apply_record, drop_node
from chatkit.store import SavedTopic, StoredMessage, StoreError

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub
    from chatkit.server.hub.member import Member

log = logging.getLogger("chatkit.server")

STATE = "_state"  # the `type` of the stand-in event of an entry that only changes membership


def event_entry(pending: Pending, seq: int) -> dict[str, Any]:
    """The entry for an accepted event (built under the hub's lock: names as they are now)."""
    entry: dict[str, Any] = {"s": seq, "e": json.dumps(pending.event)}
    # Who it is for, as plain text (every node reads it for every event: no JSON to decode):
    # "r" + the room [+ "\n" + the nick key it is not for], or "n" + nick keys, one a line
    # (names never hold a line break). Rarer targets are JSON objects (`_target`).
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
            entry["rk"], entry["row"] = name_key(row.room), row_json(row)
        if row.kind == "topic" and row.room is not None:
            entry["tk"] = name_key(row.room)
            if row.text:
                entry["topic"] = topic_json(SavedTopic(row.room, row.text, row.nick, row.ts))
    if pending.line is not None:
        entry["c"] = json.dumps(list(pending.line))
    return entry


def member_entry(member: Member, seq: int, old_nick: str | None) -> dict[str, Any]:
    """The entry for a member's new nick or rooms, or its leaving (retired)."""
    key = name_key(member.nick or "")
    record = None if member.retired else {
        "nick": member.nick, "rooms": [room.name for room in member.rooms.values()],
        "quiet": member.quiet, "account": member.account, "admin": member.admin,
        "peer": member.peer, "claim": member.claim}
    old = name_key(old_nick) if old_nick is not None else None
    entry: dict[str, Any] = {"s": seq, "mk": key, "tok": member.resume_token,
                             "m": json.dumps({"key": key, "rec": record, "old": old,
                                              "claim": member.claim})}
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
    return {"s": seq, "e": json.dumps(event), "t": json.dumps(target)}


def act_entry(target: Member, seq: int, action: str, room: str | None, reason: str
              ) -> dict[str, Any]:
    """The entry asking the node of `target` (a member of another node) to kick or kill it."""
    node = target.node if isinstance(target, RemoteMember) else ""
    return {"s": seq, "a": json.dumps({"do": action, "key": name_key(target.nick or ""),
                                       "node": node, "room": room, "reason": reason})}


def state_event(id_: int) -> Event:
    return cast(Event, {"type": STATE, "id": id_, "ts": 0.0})


def own_pending(pending: Pending | None, id_: int) -> Pending:
    """This node's own entry coming back from the log: its event gets its cluster id."""
    if pending is None:  # a change of membership, made here when it was accepted
        return Pending(state_event(id_), recipients=[])
    pending.event["id"] = id_
    if pending.row is not None:
        pending.row = replace(pending.row, id=id_)
    return pending


def remote_pending(hub: Hub, node: str, id_: int, fields: Mapping[bytes, bytes]
                   ) -> tuple[Pending, StoredMessage | None]:
    """Another node's entry as a `Pending` for this node's members, and what the local archive
    keeps of it. The recipients are resolved when it is delivered (`apply`, under the lock)."""
    event = _event(fields.get(b"e"), id_)
    pending = Pending(event if event is not None else state_event(id_), recipients=[])
    target = _target(fields.get(b"t"))
    member_op = load_json(fields.get(b"m"))
    line = load_json(fields.get(b"c"))
    gone = _text(fields.get(b"g"))
    kind = _text(fields.get(b"k"))
    act = load_json(fields.get(b"a"))
    reload = _text(fields.get(b"r"))
    row = None
    if event is not None and kind in ("message", "action", "topic", "private"):
        try:
            row = stored_row(event, kind)
        except (KeyError, TypeError):
            row = None

    def apply() -> None:
        if isinstance(target, dict):
            _resolve(hub, pending, target)
        if isinstance(member_op, dict) and isinstance(member_op.get("key"), str):
            old = member_op.get("old")
            claim = member_op.get("claim")
            apply_record(hub, node, member_op["key"], _record(member_op.get("rec")),
                         old if isinstance(old, str) else None,
                         claim if isinstance(claim, int) else 0)
        if event is not None and kind == "topic":
            _set_topic(hub, event)
        if isinstance(line, list) and len(line) == 3 and event is not None and \
                isinstance(line[0], str) and isinstance(line[2], list):
            hub.sent_lines.remember(line[0], _hashable(line[1]),
                                    tuple(_hashable(v) for v in line[2]), event)
        if gone:
            drop_node(hub, gone)
        if isinstance(act, dict):
            _act(hub, act)
        if reload is not None:
            _reload(hub, reload)

    pending.apply = apply
    return pending, row


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


def _target(data: bytes | None) -> dict[str, Any] | None:
    """Who an entry is for (`event_entry`), as `_resolve` reads it."""
    if not data:
        return None
    if data[:1] == b"{":
        value = load_json(data)
        return value if isinstance(value, dict) else None
    text = data[1:].decode("utf-8", "replace")
    if data[:1] == b"r":
        room, _, exclude = text.partition("\n")
        return {"room": room, "x": exclude} if exclude else {"room": room}
    if data[:1] == b"n":
        return {"to": text.split("\n") if text else []}
    return None


def _text(data: bytes | None) -> str | None:
    return data.decode("utf-8", "replace") if data is not None else None


def _event(data: bytes | None, id_: int) -> Event | None:
    """Another node's event, checked like any frame a client receives and sanitised again
    (whoever can write to Redis must not reach a terminal with an escape sequence); None for
    one that is not a frame."""
    value = load_json(data)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    value = sanitize_frame(value)
    value["id"] = id_
    try:
        check_server_frame(value)
    except FrameError:
        log.warning("cluster: a malformed event in the log (id %d) was skipped", id_)
        return None
    return cast(Event, value)


def _record(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _hashable(value: object) -> Any:
    return tuple(value) if isinstance(value, list) else value
