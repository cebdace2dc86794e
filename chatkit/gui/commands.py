"""What a line typed into the desktop client does: the same as in the terminal client.

Owns: `LineHandler`, which classifies each line with the terminal client's own rules
(`chatkit.client.lines.classify`: a message, a server `/command`, or one of the client's
commands) and carries it out through the session: messages to the room in view (or, in a
private conversation, to that person), every server command, and the client commands
/help /clear /bell /ignore /unignore /reconnect /quit /exit with the terminal client's
wording. Settings changed here (/bell, /ignore) are the ones `chatkit join` reads too.
"""

from __future__ import annotations

from collections.abc import Callable

from chatkit.client.app import merged_commands
from chatkit.client.lines import classify, history_marker
from chatkit.client.session import ChatSession, Refused
from chatkit.client.settings import BELL_MODES, Settings
from chatkit.gui.conversations import Conversations
from chatkit.protocol import (
    PASSWORD_REQUESTS,
    FrameError,
    name_key,
    normalize_nick,
    parse_command,
)

KEYS_HELP = (
    "keys: Tab completes commands, nicks and rooms; Up/Down walk what you sent;",
    "      Ctrl+K switches rooms; Ctrl+J joins one; Ctrl+L clears the view;",
    "      Ctrl++ / Ctrl+- change the font size; Esc closes a dialog; //text sends /text",
)


class LineHandler:
    """Carries out typed lines. `leave` is called for /quit and /exit (with the reason)."""

    def __init__(self, session: ChatSession, settings: Settings,
                 conversations: Conversations, leave: Callable[[str | None], None],
                 ask_password: Callable[[str], str | None] | None = None) -> None:
        self.session = session
        self.settings = settings
        self.conversations = conversations
        self.leave = leave
        #: asks for an account password, never echoed (None: this front end cannot)
        self.ask_password = ask_password

    def say(self, *lines: str, style: str = "class:status") -> None:
        for line in lines:
            self.conversations.say(line, style)

    def error(self, text: str) -> None:
        self.say(f"!!! {text}", style="class:error")

    def handle(self, line: str) -> None:
        parsed = classify(line)
        try:
            if parsed.kind == "message":
                self._report(self._send_message(parsed.text), parsed.text)
            elif parsed.kind == "command" and parsed.name in PASSWORD_REQUESTS:
                self._account(parsed.text)
            elif parsed.kind == "command":
                if marker := history_marker(parsed, self.session.current_room):
                    self.say(marker, style="class:notice")
                self._report(self.session.send_command(parsed.text), parsed.text)
            elif parsed.kind == "client":
                self._client_command(parsed.name, parsed.arg)
        except Refused as exc:
            self.error(str(exc))

    def _account(self, line: str) -> None:
        """/register, /identify, /passwd, /unregister: the password from a hidden dialog
        (twice for a new one); the session then logs in with it on every reconnect."""
        try:
            frame = parse_command(line, self.session.current_room)
        except FrameError as exc:
            self.error(exc.message)
            return
        if self.ask_password is None:
            self.error("this window cannot ask for a password; use `chatkit join`")
            return
        account = str(frame.get("account") or self.session.nick)
        new = frame["type"] in ("register", "passwd")
        password = self.ask_password(f"New password for {account}:" if new
                                     else f"Password for {account}:")
        if not password:
            self.say("cancelled")
            return
        if new and self.ask_password("The same password again:") != password:
            self.error("the two passwords differ; nothing changed")
            return
        self.session.send_login({**frame, "password": password})

    def _send_message(self, text: str) -> str:
        current = self.conversations.in_view()
        if current is not None and current.dest.private:
            return self.session.submit({"type": "privmsg", "to": current.dest.name,
                                        "text": text})
        return self.session.send_text(text)

    def _report(self, result: str, text: str) -> None:
        if result == "queued":
            self.say(f"not connected: will send after reconnecting: {text}")

    def _client_command(self, name: str, arg: str) -> None:
        if name in ("quit", "exit"):
            self.leave(arg or None)
        elif name == "help":
            self.show_help()
        elif name == "clear":
            current = self.conversations.in_view()
            if current is not None:
                current.model.clear()
        elif name == "reconnect":
            self.say({"reconnecting": f"reconnecting to {self.session.address}…",
                      "retrying": "trying again now…",
                      "connected": "already connected"}[self.session.reconnect_now()])
        elif name == "bell":
            self._bell(arg)
        elif name == "ignore":
            self._ignore(arg)
        elif name == "unignore":
            if not arg:
                self.error("usage: /unignore NICK")
            elif self.settings.unignore(arg):
                self._save()
                self.say(f"showing {arg} again")
            else:
                self.say(f"{arg} was not ignored")

    def show_help(self) -> None:
        commands = sorted(merged_commands(self.session.commands), key=lambda spec: spec.name)
        width = max(len(spec.usage) for spec in commands)
        self.say("commands:", *[f"  {spec.usage:<{width}}  {spec.help}" for spec in commands],
                 *KEYS_HELP, style="class:notice")

    def _bell(self, arg: str) -> None:
        if not arg:
            self.say(f"bell: {self.settings.bell} (choose from {', '.join(BELL_MODES)})")
            return
        mode = arg.lower()
        if mode not in BELL_MODES:
            self.error(f"usage: /bell {'|'.join(BELL_MODES)}")
            return
        self.settings.bell = mode
        self._save()
        self.say(f"bell: {mode} (notifications follow it; shared with `chatkit join`)")

    def _ignore(self, arg: str) -> None:
        if not arg:
            self.say(f"ignoring: {', '.join(self.settings.ignored) or 'nobody'}")
            return
        try:
            nick = normalize_nick(arg)
        except FrameError as exc:
            self.error(exc.message)
            return
        if name_key(nick) == name_key(self.session.nick):
            self.error("you cannot ignore yourself")
            return
        if name_key(nick) not in {name_key(known) for known in self.session.nicks()}:
            self.error(f"nobody called {nick} is here to ignore (/who lists who is)")
            return
        if self.settings.ignore(nick):
            self._save()
            self.say(f"ignoring {nick} (here only; /unignore {nick} to undo)")
        else:
            self.say(f"already ignoring {nick}")

    def _save(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            self.error(f"settings not saved: {exc}")
