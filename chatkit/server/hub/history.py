"""Stored events as the frames they were published as: a log row back into an event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatkit.protocol import Frame, fit_text, sanitize_text
from chatkit.protocol.events import MessageEvent, TopicEvent
from chatkit.protocol.sanitize import sane_ts
from chatkit.store import StoredMessage


def _clean(value: object) -> str:
    return sanitize_text(value) if isinstance(value, str) else ""


def history_frame(row: StoredMessage) -> Frame:
    """The event a row of the log was published as, marked as history.

    What the hub stores was sanitised when it was accepted, but the database is a file anyone
    with access can write: every string is sanitised again here (an escape sequence written
    into the log reaches neither a chatkit client nor a text-mode `nc`), and a time no client
    can show (`-1e20`, text) becomes 0, so the frame still passes `check_server_frame`. A
    text stored before the byte bound (MAX_TEXT_BYTES) existed is cut to it, so that its frame
    fits."""
    ts = sane_ts(row.ts) or 0.0
    text = _clean(row.text) if row.text is not None else None
    row = StoredMessage(row.id, _clean(row.room), row.kind, _clean(row.nick),
                        _clean(row.target) if row.target is not None else None,
                        fit_text(text) if text is not None else None, ts)
    if row.kind == "topic":
        topic: TopicEvent = {"type": "topic", "room": row.room or "", "text": row.text,
                             "nick": row.nick, "id": row.id, "ts": row.ts, "history": True}
        return dict(topic)
    if row.kind == "moderation":  # a notice of who did what to whom
        return {"type": "notice", "text": row.text or "", "room": row.room, "by": row.nick,
                "target": row.target, "id": row.id, "ts": row.ts, "history": True}
    if row.kind == "private":
        return {"type": "private", "from": row.nick, "to": row.target, "text": row.text,
                "id": row.id, "ts": row.ts, "history": True}
    message: MessageEvent = {"type": "message", "room": row.room or "", "nick": row.nick,
                             "text": row.text or "", "action": row.kind == "action",
                             "id": row.id, "ts": row.ts, "history": True}
    return dict(message)


def stored_row(event: Mapping[str, Any], kind: str) -> StoredMessage:
    """What the log keeps of an event (`kind`: message, action, topic, private or moderation):
    who did it and to whom as each kind's event names them (`history_frame` makes them back).
    The hub's own events have every field; another node's may lack one (None then)."""
    if kind == "private":
        nick, target = event.get("from"), event.get("to")
    elif kind == "moderation":
        nick, target = event.get("by"), event.get("target")
    else:
        nick, target = event.get("nick"), None
    return StoredMessage(event["id"], event.get("room"), kind, nick or "", target,
                         event.get("text"), event["ts"])
