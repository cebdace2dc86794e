"""Registration: a `hello` takes its nickname (or takes it back from its own ghost), gets its
welcome, and joins its room, the welcome and the room's reply going out in one send."""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from chatkit.protocol import (
    DEFAULT_ROOM,
    MAX_FRAME,
    MAX_NICK,
    MAX_REF,
    MAX_ROOM,
    MAX_TEXT,
    PROTOCOL_VERSION,
    Frame,
    FrameError,
    field,
    name_key,
    normalize_nick,
    normalize_room,
)
from chatkit.protocol.events import WelcomeFrame
from chatkit.server.hub.account_requests import admit, commands_for, hello_login, welcome_notices
from chatkit.server.hub.member import Member

if TYPE_CHECKING:
    from chatkit.server.hub.accounts import Login
    from chatkit.server.hub.hub import Hub

log = logging.getLogger("chatkit.server")


class Registration:
    """The `hello` handler (dispatched by hub/requests.py before any other request)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def on_hello(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        if member.nick is not None:
            raise FrameError("bad_frame", "already registered")
        version = field(frame, "version", int)
        if version != PROTOCOL_VERSION:
            hub.refuse(member, "unsupported_version",
                       f"server speaks protocol {PROTOCOL_VERSION}, client {version}",
                       frame.get("ref"))
            member.quit_reason = "unsupported protocol version"
            member.end(member.quit_reason)
            return
        if not member.authenticated:
            hub.check_password(member, frame.get("password"))
        nick = normalize_nick(field(frame, "nick", str))
        room_name = frame.get("room", DEFAULT_ROOM) if "room" in frame else DEFAULT_ROOM
        room_name = field({"room": room_name}, "room", str, required=False)
        if room_name is not None:
            room_name = normalize_room(room_name)
        resume = frame.get("resume")
        client_id = field(frame, "client_id", str, required=False)
        if client_id is not None and not 16 <= len(client_id) <= MAX_REF:
            raise FrameError("bad_frame", f"'client_id' must be 16 to {MAX_REF} characters")
        history = field(frame, "history", int, required=False)  # for the hello's room
        quiet = field(frame, "quiet", bool, required=False, default=False)
        login = hello_login(hub, member, frame, nick)  # slow (a password hash): unlocked
        # Joining a room too: the welcome (and whatever reaches the new nickname meanwhile)
        # waits for the room's `joined` and history, and all of it goes out in one send.
        held = room_name is not None
        if held:
            member.hold_output()
        try:
            self._register(member, frame, nick, login, client_id=client_id, resume=resume,
                           quiet=quiet)
            if hub.rules.require_account and member.account is None:
                room_name = None  # a guest there may only register or log in
            if room_name is not None:
                hub.join(member, room_name, create=True, request=None, history=history)
        finally:
            if held:
                member.release_output(b"")  # the join released it already, unless it failed

    def _register(self, member: Member, frame: Frame, nick: str, login: Login | None, *,
                  client_id: str | None, resume: object, quiet: bool) -> None:
        """The nickname taken and the welcome sent, under the lock (`hello`)."""
        hub = self.hub
        with hub.lock:
            admit(hub, member, nick, login)  # the login, and no server ban
            holder = hub.nicks.get(name_key(nick))
            if holder is not None and not holder.remote:
                # the owner of a registered nickname takes it back from its ghost
                owner = login is not None and holder.account == login.name
                if not owner and not _same_client(holder, resume, client_id):
                    raise FrameError("nick_taken", f"nickname {nick} is taken; choose another")
                # The same client again, while its old connection has not timed out yet
                # (Wi-Fi gone, laptop asleep): that connection is a ghost; end it now.
                log.info("%s reconnected from %s; ending the old connection",
                         holder.label, member.peer)
                hub.retire(holder, "reconnected")
                holder.end("reconnected")
            member.client_id = client_id
            # Another node of a cluster may hold it: the bus decides (the holder's node is
            # gone, or this is the same client, moved here after a failover)
            remote = holder if holder is not None and holder.remote else None
            hub.bus.claim_nick(member, nick, remote)
            if remote is not None:
                hub.retire(remote, "moved", announce=False)  # it lives on here
            member.nick = nick
            member.quiet = quiet
            hub.nicks[name_key(nick)] = member
            hub.bus.member_changed(member)
            log.info("%s connected (%s%s)", member.label, member.format.description,
                     ", quiet" if quiet else "")
            id_, ts = hub.stamp()
            welcome: WelcomeFrame = {
                "type": "welcome", "version": PROTOCOL_VERSION, "server": hub.name,
                "nick": nick, "commands": commands_for(hub, member),
                "limits": {"max_frame": MAX_FRAME, "max_text": MAX_TEXT, "max_nick": MAX_NICK,
                           "max_room": MAX_ROOM, "rate": hub.rules.rate_limit,
                           "burst": hub.rules.rate_burst},
                "id": id_, "ts": ts, "resume": member.resume_token}
            cluster = hub.bus.cluster_view()
            if cluster is not None:
                welcome["cluster"] = cluster
            hub.reply(member, welcome, frame)
            welcome_notices(hub, member)  # the message of the day; the login


def _same_client(holder: Member, resume: object, client_id: str | None) -> bool:
    """Whether a new connection comes from the client that holds the nickname: it knows the
    holder's `resume` token, or it is the same client process (`client_id`, which also covers
    a connection lost between the server's welcome and the client reading it, whose token
    the client never got). Both are secrets only that client has; compared in constant time."""
    if isinstance(resume, str) and hmac.compare_digest(resume.encode(),
                                                        holder.resume_token.encode()):
        return True
    return client_id is not None and holder.client_id is not None and \
        hmac.compare_digest(client_id.encode(), holder.client_id.encode())
