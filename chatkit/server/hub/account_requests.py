"""The account requests (`register`, `identify`, `passwd`, `unregister`), the message of the
day (`motd`), and what registration (`hello`) asks of accounts: a registered nickname is taken
only with its password, a server-wide ban keeps its target out, `--require-account` keeps
guests to these requests. Hashing is slow: it runs outside the hub's lock
(chatkit/server/hub/accounts.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chatkit import protocol
from chatkit.protocol import Frame, FrameError, field, name_key
from chatkit.protocol.events import AccountReply, CommandInfo, NoticeFrame, WhoUser
from chatkit.server.hub.accounts import Login
from chatkit.server.hub.member import Member

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub
    from chatkit.server.hub.rooms import Room

log = logging.getLogger("chatkit.server")

#: what a guest may still ask of a server started with `--require-account`
GUEST_REQUESTS = frozenset({"register", "identify", "help", "quit", "ping", "motd", "nick",
                            "command"})
#: lines of a message of the day, and characters of one line
MAX_MOTD_LINES, MAX_MOTD_LINE = 50, 400


def commands_for(hub: Hub, member: Member) -> list[CommandInfo]:
    """The command list as `member` gets it: operator commands for operators, admin
    commands for admins; the caller holds the lock."""
    roles = {"admin", "op"} if member.admin else \
        {"op"} if hub.moderation.ops_anywhere(member) else set()
    return protocol.command_list(frozenset(roles))


def account_reply(hub: Hub, member: Member, event: str) -> AccountReply:
    id_, ts = hub.stamp()
    return {"type": "account", "event": event,  # type: ignore[typeddict-item]
            "account": member.account, "admin": member.admin,
            "commands": commands_for(hub, member), "id": id_, "ts": ts}


def hello_login(hub: Hub, member: Member, frame: Frame, nick: str) -> Login | None:
    """At `hello`, before the lock: log in when the nickname is a registered account (its
    password in the hello's `identify`), or refuse it (`nick_registered`). A login the door
    made already (IRC SASL: `pending_login`) is that login, for any nickname but another
    account's."""
    pending = member.pending_login
    if pending is not None:
        if hub.accounts.is_registered(nick) and name_key(nick) != name_key(pending.name):
            raise FrameError("nick_registered", f"{nick} is a registered nickname (you are "
                             f"logged in to {pending.name}): choose another")
        return pending
    if not hub.accounts.is_registered(nick):
        return None
    password = frame.get("identify")
    if password is None:
        raise FrameError("nick_registered", f"{nick} is a registered nickname: log in with "
                         "its password, or choose another nickname")
    return hub.accounts.identify(member.peer, nick, password)


def admit(hub: Hub, member: Member, nick: str, login: Login | None) -> None:
    """At `hello`, under the lock, before the nickname is taken: the login, and no
    server-wide ban."""
    member.account, member.admin = (login.name, login.admin) if login else (None, False)
    try:
        hub.moderation.server_ban(member, nick)
    except FrameError:
        member.account, member.admin = None, False
        log.info("%s refused: banned from the server", member.peer)
        raise
    if login is not None:
        log.info("%s logged in to account %s%s", member.peer, login.name,
                 " (admin)" if login.admin else "")


def welcome_notices(hub: Hub, member: Member) -> None:
    """After `welcome`: the message of the day, and what a guest must do on a server that
    needs an account; under the lock."""
    for line in hub.rules.motd:
        member.send_frame(hub.notice(line))
    if member.account is not None:
        member.send_frame(account_reply(hub, member, "identified"))
    elif hub.rules.require_account:
        member.send_frame(hub.notice("this server needs an account: /register to make your "
                                     "nickname one, or /identify ACCOUNT"))


def guest_allowed(hub: Hub, member: Member, kind: str) -> None:
    """Refuse a guest anything but GUEST_REQUESTS on a `--require-account` server."""
    if hub.rules.require_account and member.account is None and kind not in GUEST_REQUESTS:
        raise FrameError("account_required", "this server needs an account: /register or "
                         "/identify first")


def mark_who(hub: Hub, users: list[WhoUser], room: Room | None) -> None:
    """/who marks admins, founders, operators, voiced people (`roles`); under the lock."""
    for user in users:
        member = hub.nicks.get(name_key(user["nick"]))
        marks = hub.moderation.marks(member, room.name if room else None) if member else []
        if marks:
            user["roles"] = marks


class AccountRequests:
    """The handlers (see the module docstring); registered in Requests' table."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.handlers = {"register": self.on_register, "identify": self.on_identify,
                         "passwd": self.on_passwd, "unregister": self.on_unregister,
                         "motd": self.on_motd}

    def _logged_in(self, member: Member) -> str:
        with self.hub.lock:
            if member.account is None:
                raise FrameError("no_account", "you are not logged in to an account")
            return member.account

    def _done(self, member: Member, frame: Frame, event: str, login: Login | None) -> None:
        hub = self.hub
        with hub.lock:
            hub.check_current(member)
            member.account, member.admin = (login.name, login.admin) if login else (None, False)
            try:  # an account banned from the server goes the moment it logs in
                hub.moderation.server_ban(member, member.nick or "")
            except FrameError as exc:
                hub.refuse(member, exc.code, exc.message, frame.get("ref"))
                hub.retire(member, "banned from the server")
                member.end("banned from the server")
                return
            hub.reply(member, account_reply(hub, member, event), frame)

    def on_register(self, member: Member, frame: Frame) -> None:
        with self.hub.lock:
            nick = member.nick or ""
            if member.account is not None and name_key(member.account) == name_key(nick):
                raise FrameError("nick_registered", f"{nick} is registered already")
        login = self.hub.accounts.register(nick, frame.get("password"))
        self._done(member, frame, "registered", login)

    def on_identify(self, member: Member, frame: Frame) -> None:
        name = field(frame, "account", str, required=False) or member.nick or ""
        login = self.hub.accounts.identify(member.peer, protocol.sanitize_text(name)[:64],
                                           frame.get("password"))
        log.info("%s logged in to account %s%s", member.label, login.name,
                 " (admin)" if login.admin else "")
        self._done(member, frame, "identified", login)

    def on_passwd(self, member: Member, frame: Frame) -> None:
        account = self._logged_in(member)
        self.hub.accounts.change_password(account, frame.get("password"))
        with self.hub.lock:
            self.hub.reply(member, account_reply(self.hub, member, "password_changed"), frame)

    def on_unregister(self, member: Member, frame: Frame) -> None:
        account = self._logged_in(member)
        self.hub.accounts.unregister(member.peer, account, frame.get("password"))
        with self.hub.lock:
            self.hub.moderation.forget_account(account)
        self._done(member, frame, "unregistered", None)

    def on_motd(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        with hub.lock:
            lines = hub.rules.motd or ["there is no message of the day"]
            for line in lines:
                notice: NoticeFrame = hub.notice(line)
                hub.reply(member, notice, frame)
