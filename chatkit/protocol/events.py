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
from typing import Literal, TypedDict

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired

# checked on arrival by the clients (kept in its own module: events.py is the types)
from chatkit.protocol.checks import check_server_frame as check_server_frame

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


class ClusterNode(TypedDict):
    """One live node of a cluster, as a `welcome` lists it (docs/protocol.md, "Clusters")."""

    id: str
    addresses: list[str]  # "host:port" of its chatkit port, "[v6]:port" for IPv6
    fingerprint: str | None  # its TLS certificate, in discovery's form; null without TLS
    users: int


class ClusterInfo(TypedDict):
    """The cluster a node belongs to: its name, this node's id, every live node."""

    name: str
    node: str
    nodes: list[ClusterNode]


class WelcomeFrame(_Stamped):
    type: Literal["welcome"]
    version: int
    server: str
    nick: str
    commands: list[CommandInfo]
    limits: Limits
    resume: NotRequired[str]
    #: a node of a cluster: the cluster's name and its live nodes (docs/cluster.md), shaped
    #: as `ClusterInfo`; absent otherwise. A malformed one is dropped on arrival
    #: (`check_server_frame`).
    cluster: NotRequired[ClusterInfo]


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
