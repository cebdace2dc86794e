"""Checking a server frame once, on arrival (`check_server_frame`): every field a client
relies on is there with its documented type (chatkit/protocol/events.py has the types; this
is their run-time check for frames from the network, which are untrusted)."""

from __future__ import annotations

from typing import Any

from chatkit.protocol.constants import MAX_TS
from chatkit.protocol.framing import FrameError

_STR, _INT, _BOOL, _LIST = (str,), (int,), (bool,), (list,)
_OPT_STR = (str, type(None))
_NUMBER = (int, float)

#: Per server frame type, the fields a client relies on and the types they must have. Checked
#: once on arrival (`check_server_frame`); optional fields are checked when present.
_REQUIRED: dict[str, dict[str, tuple[type, ...]]] = {
    "welcome": {"server": _STR, "nick": _STR},
    "joined": {"room": _STR, "members": _LIST},
    "presence": {"room": _STR, "count": _INT, "joined": _LIST, "left": _LIST,
                 "joined_count": _INT, "left_count": _INT},
    "message": {"room": _STR, "nick": _STR, "text": _STR},
    "private": {"from": _STR, "to": _STR, "text": _STR},
    "join": {"room": _STR, "nick": _STR},
    "part": {"room": _STR, "nick": _STR},
    "quit": {"nick": _STR},
    "nick": {"old": _STR, "new": _STR},
    "topic": {"room": _STR},
    "who": {"users": _LIST},
    "rooms": {"rooms": _LIST},
    "help": {"commands": _LIST},
    "history_end": {"room": _STR},
    "notice": {"text": _STR},
    "error": {"message": _STR},
    "account": {"event": _STR},
    "bans": {"bans": _LIST},
}
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "id": _INT, "ts": _NUMBER, "topic": _OPT_STR, "text": _OPT_STR, "reason": _OPT_STR,
    "nick": _OPT_STR, "room": _OPT_STR, "code": _STR, "count": _INT, "action": _BOOL,
    "history": _BOOL, "more": _BOOL, "page": _INT, "version": _INT, "resume": _STR,
    "limits": (dict,), "commands": _LIST, "partial": _BOOL,
}
#: What a stored event replayed as history (`"history": true`) carries besides: its original
#: time (shown with it) and, for a topic, who set it.
_HISTORY_REQUIRED: dict[str, dict[str, tuple[type, ...]]] = {
    "message": {"ts": _NUMBER},
    "topic": {"ts": _NUMBER, "nick": _STR},
}
#: `ts` bounds: a time every platform's `localtime` can show (1970 to the year 3000).
_TS_MAX = MAX_TS
#: List fields whose items must be of one shape: strings, or objects with these typed fields.
_ITEMS: dict[str, dict[str, tuple[type, ...]] | None] = {
    "members": None, "joined": None, "left": None,
    "users": {"nick": _STR, "rooms": _LIST},
    "rooms": {"name": _STR, "members": _INT},
    "commands": {"name": _STR, "usage": _STR, "help": _STR},
    "bans": {"id": _INT, "kind": _STR, "value": _STR},
}


def check_server_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """Return `frame` if it has every field its type needs, with the right types; else raise
    FrameError("bad_frame"). Unknown types and unknown fields pass (forward compatibility)."""
    kind = frame["type"]
    required = _REQUIRED.get(kind)
    if required is None:
        return frame
    for name, kinds in required.items():
        _check(kind, name, frame.get(name), kinds)
    for name, kinds in _OPTIONAL.items():
        value = frame.get(name)
        if value is not None and name not in required:
            _check(kind, name, value, kinds)
    if frame.get("history"):
        for name, kinds in _HISTORY_REQUIRED.get(kind, {}).items():
            _check(kind, name, frame.get(name), kinds)
    ts = frame.get("ts")
    if ts is not None and not 0 <= ts <= _TS_MAX:  # NaN compares false too
        raise FrameError("bad_frame", f"'{kind}' frame: field 'ts' is not a time")
    for name, shape in _ITEMS.items():
        items = frame.get(name)
        if isinstance(items, list) and (name in required or name in _OPTIONAL):
            for item in items:
                _check_item(kind, name, item, shape)
    return frame


def _check(kind: str, name: str, value: object, kinds: tuple[type, ...]) -> None:
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise FrameError("bad_frame", f"'{kind}' frame: field '{name}' must be {expected}")


def _check_item(kind: str, name: str, item: object,
                shape: dict[str, tuple[type, ...]] | None) -> None:
    if shape is None:
        _check(kind, name, item, _STR)
        return
    if not isinstance(item, dict):
        raise FrameError("bad_frame", f"'{kind}' frame: items of '{name}' must be objects")
    for field_name, kinds in shape.items():
        _check(kind, f"{name}[].{field_name}", item.get(field_name), kinds)
    if name == "users":
        for room in item["rooms"]:
            _check(kind, "users[].rooms[]", room, _STR)
