"""What the hub knows of a participant: `Member`, and `WireFormat`, how a door turns frames into
its bytes.

The hub and the bus never see a socket. A door (chatkit/server/doors/) makes one `Member`
subclass per connection and implements the three things the hub needs from it: deliver bytes
without ever blocking the caller, hold its live output while a joiner's history is read, and end
the connection. Each member names its `WireFormat`; the bus encodes an event once per format and
hands every member of that format the same bytes.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chatkit.server.hub.accounts import Login
    from chatkit.server.hub.rooms import Room


class WireFormat(Protocol):
    """How one kind of door writes frames. Implementations are stateless singletons: the bus
    caches encodings per format object, so members share bytes exactly when they share it."""

    #: short name: "json", "text", "irc"...
    name: str
    #: for the log, in words an operator knows: "chatkit client", "text client (nc/telnet)"
    description: str

    def encode(self, frame: Mapping[str, Any]) -> bytes:
        """The bytes every member of this format gets for an event it did not cause."""

    def encode_own(self, encoded: bytes, frame: Mapping[str, Any], ref: object, nick: str | None
                   ) -> bytes | None:
        """The copy the member who caused `frame` gets (given `encoded = encode(frame)`), or
        None for none: a JSON client gets its request's `ref` back, an nc user does not see
        its own message again (its terminal already shows what it typed)."""

    def encode_for(self, frame: Mapping[str, Any], nick: str | None) -> bytes:
        """`frame` for one member alone (a reply, an error, a notice), seen as `nick`."""


class Member:
    """One participant: its identity, its rooms, and the seams the hub drives its door by.

    Fields are guarded by the hub's lock; `deliver`, `hold_output`, `release_output` and `end`
    are thread-safe and never block on the network.
    """

    format: WireFormat
    #: a member connected to another node of a cluster (hub/remote.py): its node delivers
    remote = False

    def __init__(self, peer: str) -> None:
        self.peer = peer  # "host:port", for logs, per-address limits and the password gate
        self.nick: str | None = None
        self.rooms: dict[str, Room] = {}  # by room key; the last one is the current room
        self.authenticated = False  # gave the server password (or none is needed)
        #: proves, on a later connection, that it comes from this client (Hub.register)
        self.resume_token = secrets.token_urlsafe(18)
        self.retired = False  # nickname and rooms given up (Hub.retire); registers nothing
        #: the client's own id from `hello` (hub/repeats.py), None for clients that send none
        self.client_id: str | None = None
        self.quit_reason: str | None = None
        self.quitting = False  # left with /quit: its reason (maybe none) is shown as given
        #: a script sender (`hello` with `"quiet": true`): its joins, parts and quit are not
        #: announced and it is left out of member lists, so a `chatkit send` run is no noise
        self.quiet = False
        #: the account this member logged in to (hub/accounts.py), and whether it is a server
        #: admin; None / False for a guest
        self.account: str | None = None
        self.admin = False
        #: in a cluster, the generation of its claim on its nickname (the newer claim wins
        #: when two nodes show one nick: a client that moved); 0 alone
        self.claim = 0
        #: a login its door made before `hello` (IRC SASL, through Hub.accounts.identify):
        #: `hello` logs in to it instead of asking for a password again
        self.pending_login: Login | None = None

    @property
    def current_room(self) -> Room | None:
        return next(reversed(self.rooms.values()), None) if self.rooms else None

    @property
    def label(self) -> str:
        return f"{self.nick or '?'}@{self.peer}"

    @property
    def registered(self) -> bool:
        return self.nick is not None

    # ------------------------------------------------------------------ the door's side

    def deliver(self, data: bytes) -> None:
        """Queue bytes for this member without ever blocking the caller."""
        raise NotImplementedError

    def deliver_reply(self, data: bytes) -> None:
        """Bytes the member asked for (history, a long list): sent as it reads them, never
        counted as a slow reader's backlog; may wait (the caller is the member's own
        reader thread)."""
        self.deliver(data)

    def hold_output(self) -> None:
        """Keep what is delivered from now on until `release_output` (a joiner's history is
        read outside the hub's lock, and live events must not overtake it). Held already
        (a `hello` that joins: its welcome waits for the room), what is held so far goes out
        ahead of `release_output`'s `first`."""
        raise NotImplementedError

    def release_output(self, first: bytes) -> None:
        """Deliver what was held ahead (see `hold_output`), `first`, then everything held
        since `hold_output`, in that order."""
        raise NotImplementedError

    def end(self, reason: str | None) -> None:
        """End the connection now (the door's reader then retires the member)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Close the connection once what was delivered so far is out (after `bye`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ conveniences

    def send_frame(self, frame: Mapping[str, Any]) -> None:
        """One frame to this member alone, in its format."""
        self.deliver(self.format.encode_for(frame, self.nick))
