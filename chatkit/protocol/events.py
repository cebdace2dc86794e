"""Every frame of protocol version 1, defined once (docs/protocol.md is the prose of this file).

Client → server requests and server → client frames are `TypedDict`s: the server, the store,
the clients and the load generator annotate the frames they build or read with these types,
so a field added, renamed or mistyped in one place is caught by the type checker in every
other. At run time a frame stays a plain `dict` (no conversion on the fan-out hot path).

Frames arriving from the network are untrusted. The server checks each field of a request as
its handler reads it (`framing.field`); a client checks a whole server frame once, on arrival,
with `check_server_frame`, so nothing past decoding has to survive a missing or mistyped field.
"""

from __future__ import annotations

import sys
from typing import Any, Literal, TypedDict

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired

from chatkit.protocol.constants import MAX_TS
from chatkit.protocol.framing import FrameError

Ref = str | int


# --------------------------------------------------------------------------- client → server


class HelloRequest(TypedDict):
    type: Literal["hello"]
    version: int
    nick: str
    room: NotRequired[str | None]
    client: NotRequired[str]
    password: NotRequired[str]
    resume: NotRequired[str]
    #: a random secret, the same on every connection of one client process: lines it sends
    #: again after a reconnect (same `tag`) are recognised, never stored twice
    client_id: NotRequired[str]
    #: this client answers a server `ping` with a `pong` (same `id`); the server then pings
    #: it after a silence and drops it when no answer comes (docs/protocol.md)
    pings: NotRequired[bool]
    ref: NotRequired[Ref]


class MsgRequest(TypedDict):
    type: Literal["msg", "me"]
    room: str
    text: str
    #: with the hello's `client_id`: this line, whichever connection sends it (see HelloRequest)
    tag: NotRequired[Ref]
    ref: NotRequired[Ref]


class PrivmsgRequest(TypedDict):
    type: Literal["privmsg"]
    to: str
    text: str
    tag: NotRequired[Ref]
    ref: NotRequired[Ref]


class JoinRequest(TypedDict):
    type: Literal["join"]
    room: str
    create: NotRequired[bool]
    history: NotRequired[int]
    after: NotRequired[int]
    ref: NotRequired[Ref]


class HistoryRequest(TypedDict):
    type: Literal["history"]
    room: str
    limit: NotRequired[int]
    after: NotRequired[int]
    ref: NotRequired[Ref]


class PartRequest(TypedDict):
    type: Literal["part"]
    room: str
    reason: NotRequired[str | None]
    ref: NotRequired[Ref]


class NickRequest(TypedDict):
    type: Literal["nick"]
    nick: str
    ref: NotRequired[Ref]


class WhoRequest(TypedDict):
    type: Literal["who"]
    room: NotRequired[str | None]
    ref: NotRequired[Ref]


class TopicRequest(TypedDict):
    type: Literal["topic"]
    room: str
    text: NotRequired[str | None]
    ref: NotRequired[Ref]


class CommandRequest(TypedDict):
    type: Literal["command"]
    line: str
    ref: NotRequired[Ref]


class QuitRequest(TypedDict):
    type: Literal["quit"]
    reason: NotRequired[str | None]
    ref: NotRequired[Ref]


class BareRequest(TypedDict):
    """`rooms`, `help`, `ping` and `motd`: a type and nothing else."""

    type: Literal["rooms", "help", "ping", "motd"]
    ref: NotRequired[Ref]


class AccountRequest(TypedDict):
    """`register` (the current nickname becomes an account), `identify` (log in to
    `account`, default the current nickname), `passwd` (a new password for the account
    logged in to), `unregister` (give it up; the password is asked again). A client asks
    its user for `password` (docs/accounts.md)."""

    type: Literal["register", "identify", "passwd", "unregister"]
    password: str
    account: NotRequired[str]
    ref: NotRequired[Ref]


class ModerateRequest(TypedDict):
    """A room operator's or admin's action (docs/accounts.md). `room` null: server-wide
    (`ban`, `unban`, `bans` by admins); `on` for the room settings."""

    type: Literal["moderate"]
    action: Literal["op", "deop", "voice", "devoice", "kick", "ban", "unban", "bans", "mute",
                    "unmute", "invite", "moderated", "invite_only", "topic_lock"]
    room: str | None
    target: NotRequired[str]
    duration: NotRequired[int]
    reason: NotRequired[str | None]
    on: NotRequired[bool]
    ref: NotRequired[Ref]


class KillRequest(TypedDict):
    """An admin disconnects `nick`."""

    type: Literal["kill"]
    nick: str
    reason: NotRequired[str | None]
    ref: NotRequired[Ref]


class WallRequest(TypedDict):
    """An admin's notice to everyone connected."""

    type: Literal["wall"]
    text: str
    ref: NotRequired[Ref]


# --------------------------------------------------------------------------- server → client


class CommandInfo(TypedDict):
    name: str
    usage: str
    help: str
    #: who may use it: absent for everyone, "op" (room operators and admins), "admin"
    role: NotRequired[str]


class Limits(TypedDict):
    max_frame: int
    max_text: int
    max_nick: int
    max_room: int
    #: lines per second a client may send, and how many in a burst (0: no limit). Lines
    #: faster than that are not dropped: the server reads them later. Added in protocol 1.
    rate: NotRequired[float]
    burst: NotRequired[int]


class WhoUser(TypedDict):
    nick: str
    rooms: list[str]
    #: "admin", "founder", "op", "voice" (in the room asked about); absent when none
    roles: NotRequired[list[str]]


class RoomInfo(TypedDict):
    name: str
    members: int
    topic: str | None


class _Stamped(TypedDict):
    """What every server frame carries: its id in the server's one sequence, and the time."""

    id: int
    ts: float
    ref: NotRequired[Ref]


class WelcomeFrame(_Stamped):
    type: Literal["welcome"]
    version: int
    server: str
    nick: str
    commands: list[CommandInfo]
    limits: Limits
    resume: NotRequired[str]


class JoinedFrame(_Stamped):
    type: Literal["joined"]
    room: str
    topic: str | None
    members: list[str]
    #: people in the room now (the joiner included); absent from servers before crowds
    count: NotRequired[int]
    #: in a crowd (docs/protocol.md, "Crowds") `members` names only some of them
    partial: NotRequired[bool]
    #: a list too long for one frame comes in pages (docs/protocol.md, "Pages"): `page`
    #: counts from 0, `more` is true on every page but the last; absent when it fits in one
    page: NotRequired[int]
    more: NotRequired[bool]


class MessageEvent(_Stamped):
    type: Literal["message"]
    room: str
    nick: str
    text: str
    action: bool
    history: NotRequired[bool]


# `from` is a keyword, so this one is declared in the functional form.
PrivateEvent = TypedDict(
    "PrivateEvent",
    {"type": Literal["private"], "id": int, "ts": float, "from": str, "to": str, "text": str,
     "ref": NotRequired[Ref], "history": NotRequired[bool]},
)


class JoinEvent(_Stamped):
    type: Literal["join"]
    room: str
    nick: str


class PartEvent(_Stamped):
    type: Literal["part"]
    room: str
    nick: str
    reason: str | None


class QuitEvent(_Stamped):
    type: Literal["quit"]
    nick: str
    reason: str | None


class PresenceEvent(_Stamped):
    """Who came and went in a crowd since the last one (docs/protocol.md, "Crowds"): `count`
    people there now; `joined`/`left` name some (at most 20 each) of the `joined_count`/
    `left_count` people who came and went."""

    type: Literal["presence"]
    room: str
    count: int
    joined: list[str]
    left: list[str]
    joined_count: int
    left_count: int


class NickEvent(_Stamped):
    type: Literal["nick"]
    old: str
    new: str


class TopicEvent(_Stamped):
    """A topic change (`nick` set it) or, with `nick` null, the answer to a topic query."""

    type: Literal["topic"]
    room: str
    text: str | None
    nick: str | None
    history: NotRequired[bool]


class WhoReply(_Stamped):
    type: Literal["who"]
    room: str | None
    users: list[WhoUser]
    #: a list too long for one frame comes in pages (docs/protocol.md, "Pages"): `page`
    #: counts from 0, `more` is true on every page but the last; absent when it fits in one
    page: NotRequired[int]
    more: NotRequired[bool]


class RoomsReply(_Stamped):
    type: Literal["rooms"]
    rooms: list[RoomInfo]
    #: a list too long for one frame comes in pages (docs/protocol.md, "Pages"): `page`
    #: counts from 0, `more` is true on every page but the last; absent when it fits in one
    page: NotRequired[int]
    more: NotRequired[bool]


class HelpReply(_Stamped):
    type: Literal["help"]
    commands: list[CommandInfo]


class HistoryEnd(_Stamped):
    type: Literal["history_end"]
    room: str
    count: int
    more: bool


class NoticeFrame(_Stamped):
    type: Literal["notice"]
    text: str


class ModerationNotice(_Stamped):
    """A notice of a moderation action (a `notice` to old clients): `text` says who did what
    to whom and why; stored in the log as kind "moderation"."""

    type: Literal["notice"]
    text: str
    room: str | None
    action: str
    by: str
    target: str | None
    history: NotRequired[bool]


class AccountReply(_Stamped):
    """What changed about the account this client is logged in to; `commands` is the
    command list for its roles now."""

    type: Literal["account"]
    event: Literal["registered", "identified", "unregistered", "password_changed", "roles"]
    account: str | None
    admin: bool
    commands: list[CommandInfo]


class BanInfo(TypedDict):
    id: int
    what: str  # ban | mute
    kind: str  # nick | account | address
    value: str
    by: str
    reason: str | None
    expires: float | None


class BansReply(_Stamped):
    type: Literal["bans"]
    room: str | None
    bans: list[BanInfo]


class PongFrame(_Stamped):
    type: Literal["pong"]


class ByeFrame(_Stamped):
    type: Literal["bye"]
    reason: str | None


class ErrorFrame(_Stamped):
    type: Literal["error"]
    code: str
    message: str


ServerFrame = (
    WelcomeFrame | JoinedFrame | MessageEvent | PrivateEvent | JoinEvent | PartEvent | QuitEvent
    | NickEvent | TopicEvent | WhoReply | RoomsReply | HelpReply | HistoryEnd | NoticeFrame
    | PongFrame | ByeFrame | ErrorFrame | ModerationNotice | AccountReply | BansReply
)

#: The server frames that are events for other people: they get their id in order and go
#: through the bus to every recipient.
Event = (MessageEvent | PrivateEvent | JoinEvent | PartEvent | QuitEvent | NickEvent
         | TopicEvent | PresenceEvent | ModerationNotice)


# --------------------------------------------------------------------------- checking arrivals

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
