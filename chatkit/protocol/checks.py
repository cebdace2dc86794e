"""Checking a server frame once, on arrival (`check_server_frame`): every field a client
relies on is there with its documented type (chatkit/protocol/events.py has the types; this
is their run-time check for frames from the network, which are untrusted)."""

from __future__ import annotations

import re
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
#: Optional fields whose type differs for one frame type: a moderation notice's `action` names
#: what was done ("kick", "ban"...), where a message's says whether it is a /me.
_OPTIONAL_OF: dict[str, dict[str, tuple[type, ...]]] = {
    "notice": {"action": _STR, "by": _STR, "target": _OPT_STR},
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

_Kinds = tuple[type, ...]
#: Per frame type, what `check_server_frame` checks, worked out once: the required fields, the
#: optional ones it does not require, what history adds, and the list fields of typed items.
_PLANS: dict[str, tuple[tuple[tuple[str, _Kinds], ...], dict[str, _Kinds],
                        tuple[tuple[str, _Kinds], ...],
                        tuple[tuple[str, dict[str, _Kinds] | None], ...]]] = {
    kind: (tuple(required.items()),
           {name: kinds for name, kinds in {**_OPTIONAL, **_OPTIONAL_OF.get(kind, {})}.items()
            if name not in required},
           tuple(_HISTORY_REQUIRED.get(kind, {}).items()),
           tuple((name, shape) for name, shape in _ITEMS.items()
                 if name in required or name in _OPTIONAL))
    for kind, required in _REQUIRED.items()}


#: Bounds of a welcome's `cluster` (docs/protocol.md, "Clusters"): a hostile server gets no
#: more of the client's memory or time than this.
MAX_CLUSTER_NODES = 64
MAX_NODE_ADDRESSES = 16
MAX_CLUSTER_NAME = 64
MAX_ADDRESS = 64  # "[v6]:port" of the longest IPv6 address is 47 characters
MAX_USERS = 10**9
#: a certificate fingerprint in discovery's form (chatkit/discovery/wire.py)
_FINGERPRINT = re.compile(r"^[0-9A-Za-z:+/=_-]{1,128}\Z")


def check_server_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """Return `frame` if it has every field its type needs, with the right types; else raise
    FrameError("bad_frame"). Unknown types and unknown fields pass (forward compatibility).
    A `welcome`'s optional `cluster` that is not exactly as documented is removed from the
    frame (the connection works without it), never an error."""
    kind = frame["type"]
    plan = _PLANS.get(kind)
    if plan is None:
        return frame
    required, optional, history, item_fields = plan
    if kind == "welcome" and "cluster" in frame and not cluster_ok(frame["cluster"]):
        del frame["cluster"]
    # `type(...) in kinds` is the quick yes (every frame, on both ends); `_check` decides the
    # rest (a subclass, a bool where a number is due) and says what is wrong
    for name, kinds in required:
        value = frame.get(name)
        if type(value) not in kinds:
            _check(kind, name, value, kinds)
    for name, value in frame.items():
        wanted = optional.get(name)
        if wanted is not None and value is not None and type(value) not in wanted:
            _check(kind, name, value, wanted)
    if history and frame.get("history"):
        for name, kinds in history:
            _check(kind, name, frame.get(name), kinds)
    ts = frame.get("ts")
    if ts is not None and not 0 <= ts <= _TS_MAX:  # NaN compares false too
        raise FrameError("bad_frame", f"'{kind}' frame: field 'ts' is not a time")
    for name, shape in item_fields:
        items = frame.get(name)
        if isinstance(items, list):
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


def cluster_ok(value: object) -> bool:
    """Whether a welcome's `cluster` has the documented shape and stays within its bounds:
    a name and this node's id (1-64 characters), at most 64 nodes with distinct ids, each
    with at most 16 addresses (strings of at most 64 characters; parsed by the client), a
    fingerprint in discovery's form or null, and a user count."""
    if not isinstance(value, dict):
        return False
    nodes = value.get("nodes")
    if not (_short(value.get("name"), MAX_CLUSTER_NAME) and _short(value.get("node"), 64)
            and isinstance(nodes, list) and 0 < len(nodes) <= MAX_CLUSTER_NODES):
        return False
    ids: set[str] = set()
    for node in nodes:
        if not isinstance(node, dict) or not _short(node.get("id"), 64) or node["id"] in ids:
            return False
        ids.add(node["id"])
        addresses, fingerprint, users = (node.get("addresses"), node.get("fingerprint"),
                                         node.get("users"))
        if not isinstance(addresses, list) or len(addresses) > MAX_NODE_ADDRESSES \
                or not all(_short(a, MAX_ADDRESS) for a in addresses):
            return False
        if fingerprint is not None and not (isinstance(fingerprint, str)
                                            and _FINGERPRINT.match(fingerprint)):
            return False
        if not isinstance(users, int) or isinstance(users, bool) \
                or not 0 <= users <= MAX_USERS:
            return False
    return True


def _short(value: object, limit: int) -> bool:
    """A non-empty string of at most `limit` characters."""
    return isinstance(value, str) and 0 < len(value) <= limit
