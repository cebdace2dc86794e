"""Stored events as the frames they were published as: a log row back into an event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from chatkit.protocol import Frame, fit_text
from chatkit.protocol.events import MessageEvent, TopicEvent
from chatkit.store import StoredMessage


def history_frame(row: StoredMessage) -> Frame:
    """The event a row of the log was published as, marked as history. A text stored before
    the byte bound (MAX_TEXT_BYTES) existed is cut to it, so that its frame fits."""
    if row.text is not None:
        row = replace(row, text=fit_text(row.text))
    if row.kind == "topic":
        topic: TopicEvent = {"type": "topic", "room": row.room or "", "text": row.text,
                             "nick": row.nick, "id": row.id, "ts": row.ts, "history": True}
        return dict(topic)
    if row.kind == "private":
        return {"type": "private", "from": row.nick, "to": row.target, "text": row.text,
                "id": row.id, "ts": row.ts, "history": True}
    message: MessageEvent = {"type": "message", "room": row.room or "", "nick": row.nick,
                             "text": row.text or "", "action": row.kind == "action",
                             "id": row.id, "ts": row.ts, "history": True}
    return dict(message)


def stored_row(event: Mapping[str, Any], kind: str) -> StoredMessage:
    """What the log keeps of an event the hub accepts (`kind`: message, action, topic or
    private)."""
    if kind == "private":
        return StoredMessage(event["id"], None, kind, event["from"], event["to"],
                             event["text"], event["ts"])
    return StoredMessage(event["id"], event["room"], kind, event["nick"], None, event["text"],
                         event["ts"])
